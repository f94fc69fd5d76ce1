import ArtifactKit
import Foundation
import GPT2
import Quantization

/// Benchmark of the GPT-2 core on gpt2-small/medium shapes with random weights. Prints one JSON
/// line per case; tools/bench/run_gpt2.sh runs it beside tools/bench/gpt2_torch.py and prints a
/// table. Usage:
///
///   bench-gpt2 --case forward|forward-cls|train-ch6|train-ch6-cached|train-ch7|generate|trunk [--model 124M|355M] [--reps N]
///              [--prompt-tokens 20 --new-tokens 30]   (generate)
///   bench-gpt2 --case generate-quantized [--model 124M|355M] [--reps N] [--new-tokens 64] [--bases float32,int8,nf4]
///   bench-gpt2 --case generate-batch [--model 124M] [--rows 110] [--batches 8,32,110] [--new-tokens 256]
///
/// `generate-batch` is `evaluate instruct`'s generation: `rows` ragged prompts (30-69 tokens)
/// answered `batch` at a time with the KV cache, every row running the full `new-tokens` (random
/// weights never draw <|endoftext|> on purpose, so no eos), for each batch size in turn. The
/// chapter-6 cases (`forward-cls`, `train-ch6`, `train-ch6-cached`) run the classifier `train`
/// and `evaluate` run (BenchChapter6.swift).
@main
struct BenchGPT2 {
    /// The model name as given on the command line ("124M"), to pair rows with the torch side.
    nonisolated(unsafe) static var modelLabel = "124M"

    static func main() throws {
        var args = CommandLine.arguments.dropFirst()
        var caseName = "forward", modelName = "124M", reps = 5, promptTokens = 20
        var rows = 110, batches = [8, 32, 110]
        var bases = ["float32", "int8", "nf4"]   // generate-quantized (a subset e.g. for profiling one)
        var newTokens: Int? = nil   // generate: 30, generate-batch: 256
        while let a = args.popFirst() {
            switch a {
            case "--rows": rows = Int(args.popFirst() ?? "") ?? rows
            case "--batches": batches = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--case": caseName = args.popFirst() ?? caseName
            case "--model": modelName = args.popFirst() ?? modelName
            case "--reps": reps = Int(args.popFirst() ?? "") ?? reps
            case "--prompt-tokens": promptTokens = Int(args.popFirst() ?? "") ?? promptTokens
            case "--new-tokens": newTokens = Int(args.popFirst() ?? "") ?? newTokens
            case "--bases": bases = (args.popFirst() ?? "").split(separator: ",").map(String.init)
            default:
                FileHandle.standardError.write("unknown argument \(a)\n".data(using: .utf8)!)
                exit(2)
            }
        }
        let config = try GPT2Config.named(modelName)
        modelLabel = modelName
        switch caseName {
        case "forward": try forward(config, reps: reps)
        case "forward-cls": try forwardClassifier(config, reps: reps)
        case "train-ch6": try trainChapter6(config, reps: reps)
        case "train-ch6-cached": try trainChapter6Cached(config, reps: reps)
        case "train-ch7": try trainChapter7(config, reps: reps)
        case "generate": try generate(config, reps: reps, promptLength: promptTokens, newTokens: newTokens ?? 30)
        case "generate-batch": try generateBatches(config, rows: rows, batches: batches, newTokens: newTokens ?? 256)
        case "trunk": try trunkChunks(config, reps: reps)
        case "generate-quantized": try generateQuantized(config, reps: reps, promptLength: promptTokens, newTokens: newTokens ?? 64, bases: bases)
        default:
            FileHandle.standardError.write("unknown case \(caseName)\n".data(using: .utf8)!)
            exit(2)
        }
    }

    /// N(0, 0.02) weights, LayerNorm weights 1 and biases 0 (GPT-2's initialisation).
    static func randomModel(_ config: GPT2Config, head: ModelHead) throws -> GPT2Model {
        let layout = ParameterLayout(config: config, head: head)
        return try GPT2Model(layout: layout, params: randomParameters(layout))
    }

    /// The parameters of `randomModel`.
    static func randomParameters(_ layout: ParameterLayout) -> [Float] {
        var rng = SeededGenerator(seed: 1)
        var p = [Float](repeating: 0, count: layout.totalCount)
        for t in layout.tensors {
            let isNorm = t.name.contains("ln_")
            for i in t.range {
                if isNorm {
                    p[i] = t.name.hasSuffix("weight") ? 1 : 0
                } else {
                    let u1 = max(rng.nextUnitFloat(), 1e-7), u2 = rng.nextUnitFloat()
                    p[i] = 0.02 * (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
                }
            }
        }
        return p
    }

    static func tokens(_ n: Int, _ vocab: Int, seed: UInt64 = 5) -> [Int32] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024   // Linux reports KiB
    }

    /// Matrix-product FLOPs of one forward pass over B x T tokens: the block linears, attention as
    /// computed (full T x T score blocks), and the head on `headRows` rows of width `headWidth`.
    static func forwardFlops(_ c: GPT2Config, B: Int, T: Int, blocks: Int, headRows: Int, headWidth: Int) -> Double {
        let N = Double(B * T), C = Double(c.embDim)
        let linear = 2 * N * 12 * C * C
        let attention = 4 * Double(B) * Double(T) * Double(T) * C
        return Double(blocks) * (linear + attention) + 2 * Double(headRows) * C * Double(headWidth)
    }

    static func report(_ fields: [String: Any]) {
        var f = fields
        f["impl"] = "swift"
        f["peak_rss_mib"] = peakRSSMiB()
        let data = try! JSONSerialization.data(withJSONObject: f, options: [.sortedKeys])
        print(String(data: data, encoding: .utf8)!)
    }

    static func forward(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 120
        let model = try randomModel(c, head: .languageModel)
        let toks = tokens(B * T, c.vocabSize)
        var times: [Double] = []
        for i in 0...reps {
            let t = try time { _ = try model.logits(tokens: toks, batch: B, seqLen: T) }
            if i > 0 { times.append(t) }   // the first run allocates the workspace
        }
        let med = median(times)
        let flops = forwardFlops(c, B: B, T: T, blocks: c.nLayers, headRows: B * T, headWidth: c.vocabSize)
        report(["case": "forward", "model": modelLabel, "median_s": med, "times": times,
                "tokens_per_s": Double(B * T) / med, "gflops": flops / med / 1e9])
    }

    /// The chapter-6 frozen-trunk pass (blocks 0-10 over rows of 120 tokens, no activations kept)
    /// with different numbers of rows per pass: the same 64 rows each time, so every size does the
    /// same work. Also reports how far each size's states are from those of 8-row passes.
    static func trunkChunks(_ c: GPT2Config, reps: Int) throws {
        let T = 120, rows = 64, endBlock = c.nLayers - 1
        let model = try randomModel(c, head: .classifier(numClasses: 2))
        let trunk = try GPT2Trunk(model: model)
        let toks = tokens(rows * T, c.vocabSize)
        func states(chunk: Int) throws -> [Float] {
            var out: [Float] = []
            for start in stride(from: 0, to: rows, by: chunk) {
                let n = min(chunk, rows - start)
                out += try trunk.hiddenStates(tokens: Array(toks[(start * T)..<((start + n) * T)]), batch: n, seqLen: T, endBlock: endBlock)
            }
            return out
        }
        let reference = try states(chunk: 8)
        let flops = forwardFlops(c, B: rows, T: T, blocks: endBlock, headRows: 0, headWidth: 0)
        for chunk in [4, 8, 16, 32, 64] {
            _ = try trunk.hiddenStates(tokens: Array(toks[0..<(chunk * T)]), batch: chunk, seqLen: T, endBlock: 1)   // workspace
            var times: [Double] = []
            var got: [Float] = []
            for _ in 0..<max(reps, 1) { times.append(try time { got = try states(chunk: chunk) }) }
            var maxDiff: Float = 0
            for (a, b) in zip(got, reference) { maxDiff = max(maxDiff, abs(a - b)) }
            let med = median(times)
            report(["case": "trunk", "model": modelLabel, "rows_per_pass": chunk, "matrix_rows": chunk * T, "median_s": med,
                    "times": times, "gflops": flops / med / 1e9, "max_abs_diff_vs_8": Double(maxDiff),
                    "bitwise_equal_to_8": got == reference])
        }
    }

    static func trainChapter7(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 90
        let model = try randomModel(c, head: .languageModel)
        let trainable = TrainableSet.all(model.layout)
        let opt = AdamW(parameterCount: model.layout.totalCount, learningRate: 5e-5, weightDecay: 0.1)
        let toks = tokens(B * T, c.vocabSize)
        var targets = tokens(B * T, c.vocabSize, seed: 9)
        for b in 0..<B { for t in 0..<20 { targets[b * T + t] = -100 } }   // masked instruction prefix
        var times: [Double] = []
        var loss: Float = 0
        for i in 0...reps {
            let t = try time {
                model.zeroGradients()
                loss = try model.forwardBackward(tokens: toks, batch: B, seqLen: T, objective: .languageModel(targets: targets),
                                                 trainable: trainable)
                try opt.update(model, trainable: trainable)
            }
            if i > 0 { times.append(t) }
        }
        let med = median(times)
        let fwd = forwardFlops(c, B: B, T: T, blocks: c.nLayers, headRows: B * T, headWidth: c.vocabSize)
        report(["case": "train-ch7", "model": modelLabel, "median_s": med, "times": times, "loss": Double(loss),
                "tokens_per_s": Double(B * T) / med, "gflops": 3 * fwd / med / 1e9])
    }

    /// Batch 1 with and without the cache, then 8 prompts of lengths promptLength ..< promptLength + 8
    /// together (ragged, as `evaluate instruct` batches them).
    static func generate(_ c: GPT2Config, reps: Int, promptLength: Int, newTokens: Int) throws {
        let model = try randomModel(c, head: .languageModel)
        let prompts = (0..<32).map { tokens(promptLength + $0 % 8, c.vocabSize, seed: UInt64(100 + $0)) }
        let options = GenerationOptions(maxNewTokens: newTokens)
        var uncached: [Double] = [], cached1: [Double] = [], cached8: [Double] = [], cached32: [Double] = []
        var same = true
        for _ in 0..<max(1, reps / 2) {
            var a: [[Int32]] = [], b: [[Int32]] = []
            uncached.append(try time { a = try model.generateUncached(prompts: [prompts[0]], options: options) })
            cached1.append(try time { b = try model.generate(prompts: [prompts[0]], options: options) })
            same = same && a == b
            cached8.append(try time { _ = try model.generate(prompts: Array(prompts[0..<8]), options: options) })
            cached32.append(try time { _ = try model.generate(prompts: prompts, options: options) })
        }
        let u = median(uncached), c1 = median(cached1), c8 = median(cached8), c32 = median(cached32)
        report(["case": "generate", "model": modelLabel, "prompt_tokens": promptLength, "new_tokens": newTokens,
                "uncached_b1_tok_s": Double(newTokens) / u, "cached_b1_tok_s": Double(newTokens) / c1,
                "cached_b8_tok_s": Double(8 * newTokens) / c8, "cached_b32_tok_s": Double(32 * newTokens) / c32,
                "cached_equals_uncached": same, "times_cached_b32": cached32,
                "times_uncached": uncached, "times_cached_b1": cached1, "times_cached_b8": cached8])
    }

    /// Batch-1 KV-cached decoding with the base's Linear weights float32, int8 and NF4 (the
    /// quantized ones read by the matrix-vector kernels), the three models alternating within each
    /// repetition so they see the same machine.
    static func generateQuantized(_ c: GPT2Config, reps: Int, promptLength: Int, newTokens: Int, bases: [String]) throws {
        let types: [(String, QuantizationType?)] = [("float32", nil), ("int8", .int8), ("nf4", .nf4)].filter { bases.contains($0.0) }
        let models: [(String, GPT2Model)] = try types.map { label, type in
            let m = try randomModel(c, head: .languageModel)
            if let type { _ = try m.quantizeBase(type) }
            return (label, m)
        }
        let prompt = tokens(promptLength, c.vocabSize, seed: 100)
        let options = GenerationOptions(maxNewTokens: newTokens)
        var times: [String: [Double]] = [:], outputs: [String: [Int32]] = [:]
        for _ in 0..<max(1, reps) {
            for (label, m) in models {
                times[label, default: []].append(try time { outputs[label] = try m.generate(prompts: [prompt], options: options)[0] })
            }
        }
        var row: [String: Any] = ["case": "generate-quantized", "model": modelLabel, "prompt_tokens": promptLength, "new_tokens": newTokens]
        for (label, _) in models {
            row["\(label)_tok_s"] = Double(newTokens) / median(times[label]!)
            if let reference = outputs["float32"] {
                row["\(label)_same_tokens_as_float32"] = zip(outputs[label]!, reference).filter { $0 == $1 }.count
            }
        }
        for label in ["int8", "nf4"] {
            if let f = times["float32"], let t = times[label] { row["\(label)_speedup"] = median(f) / median(t) }
        }
        report(row)
    }

    static func generateBatches(_ c: GPT2Config, rows: Int, batches: [Int], newTokens: Int) throws {
        let model = try randomModel(c, head: .languageModel)
        let prompts = (0..<rows).map { tokens(30 + ($0 * 7) % 40, c.vocabSize, seed: UInt64(200 + $0)) }
        let options = GenerationOptions(maxNewTokens: newTokens)
        for batch in batches {
            var produced = 0
            let seconds = try time {
                for start in stride(from: 0, to: rows, by: batch) {
                    produced += try model.generate(prompts: Array(prompts[start..<min(start + batch, rows)]), options: options)
                        .reduce(0) { $0 + $1.count }
                }
            }
            // The cache holds keys and values of every layer for min(context, longest prompt + new tokens) positions.
            let positions = min(c.contextLength, (prompts.map(\.count).max() ?? 0) + newTokens)
            let cacheMiB = Double(2 * c.nLayers * min(batch, rows) * positions * c.embDim * 4) / 1048576
            report(["case": "generate-batch", "model": modelLabel, "rows": rows, "batch": batch, "new_tokens": produced,
                    "seconds": seconds, "tokens_per_s": Double(produced) / seconds, "kv_cache_mib": cacheMiB])
        }
    }
}

import ArtifactKit
import COpenBLAS
import Foundation

/// Settings of the book's `generate` function.
public struct GenerationOptions: Equatable, Sendable {
    /// How many tokens to add at most per prompt.
    public var maxNewTokens: Int
    /// 0 = greedy argmax; > 0 divides the logits before sampling.
    public var temperature: Float
    /// Keep only the k largest logits (ties with the k-th kept) before sampling; nil = all.
    public var topK: Int?
    /// A row stops when it draws this id (the id itself is not appended).
    public var eosId: Int32?
    /// Seed of the sampling RNG; row r uses its own stream derived from (seed, r), so a row's
    /// output does not depend on the other rows of the batch.
    public var seed: UInt64

    public init(maxNewTokens: Int, temperature: Float = 0, topK: Int? = nil, eosId: Int32? = nil, seed: UInt64 = 123) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.eosId = eosId
        self.seed = seed
    }
}

extension GPT2Model {
    /// Generates continuations of several prompts (any lengths) at once with a key/value cache.
    /// Returns the new tokens of every prompt. The sequences are left-aligned: row r's tokens sit
    /// at positions 0..<len(r) of its own cache, so no padding ever enters the attention.
    /// When a sequence outgrows the context length it is cropped to its last contextLength tokens
    /// (as the book does), which shifts the positions: that row is then recomputed in full each step.
    public func generate(prompts: [[Int32]], options: GenerationOptions) throws -> [[Int32]] {
        try validatePrompts(prompts, options)
        guard layout.head == .languageModel else { throw PipelineError("generation needs the language-model head") }
        let ctx = config.contextLength
        let R = prompts.count
        var seqs = prompts
        var produced = [[Int32]](repeating: [], count: R)
        var cachedLength = [Int](repeating: 0, count: R)
        var active = [Bool](repeating: true, count: R)
        var rngs = (0..<R).map { rowRandom(options.seed, $0) }
        // Positions never exceed min(context, longest prompt + new tokens): size the cache for that.
        let longest = prompts.map(\.count).max() ?? 0
        let cache = KVCache(layers: config.nLayers, rows: R, context: min(ctx, longest + options.maxNewTokens),
                            width: config.embDim)
        for _ in 0..<options.maxNewTokens {
            var segments: [DecodeSegment] = []
            for r in 0..<R where active[r] {
                let seq = seqs[r]
                if seq.count <= ctx && cachedLength[r] == seq.count - 1 && cachedLength[r] > 0 {
                    segments.append(DecodeSegment(row: r, start: cachedLength[r], tokens: [seq[seq.count - 1]]))
                } else {
                    segments.append(DecodeSegment(row: r, start: 0, tokens: Array(seq.suffix(ctx))))
                }
            }
            if segments.isEmpty { break }
            let logits = decode(segments, cache: cache)
            let V = config.vocabSize
            for (s, seg) in segments.enumerated() {
                let r = seg.row
                cachedLength[r] = seg.start + seg.tokens.count
                let next = Array(UnsafeBufferPointer(start: logits.base + s * V, count: V))
                let id = chooseToken(next, options, &rngs[r])
                if let eos = options.eosId, id == eos {
                    active[r] = false
                    continue
                }
                seqs[r].append(id)
                produced[r].append(id)
            }
        }
        return produced
    }

    /// The book's loop without a cache: the full forward pass over the (cropped) sequence for
    /// every new token, one prompt at a time. The reference for `generate` and the benchmark.
    public func generateUncached(prompts: [[Int32]], options: GenerationOptions) throws -> [[Int32]] {
        try validatePrompts(prompts, options)
        let ctx = config.contextLength
        var out: [[Int32]] = []
        for (r, prompt) in prompts.enumerated() {
            var seq = prompt
            var produced: [Int32] = []
            var rng = rowRandom(options.seed, r)
            for _ in 0..<options.maxNewTokens {
                let window = Array(seq.suffix(ctx))
                // The book's `logits[:, -1, :]`: every position's logits, the last one read.
                let all = try self.logits(tokens: window, batch: 1, seqLen: window.count)
                let logits = Array(all[((window.count - 1) * config.vocabSize)...])
                let id = chooseToken(logits, options, &rng)
                if let eos = options.eosId, id == eos { break }
                seq.append(id)
                produced.append(id)
            }
            out.append(produced)
        }
        return out
    }

    func rowRandom(_ seed: UInt64, _ row: Int) -> SeededGenerator {
        var mix = SeededGenerator(seed: seed ^ (UInt64(row) &* 0xD1B5_4A32_D192_ED03))
        return SeededGenerator(seed: mix.next())
    }

    func validatePrompts(_ prompts: [[Int32]], _ options: GenerationOptions) throws {
        guard options.maxNewTokens >= 0 else { throw PipelineError("max_new_tokens must be >= 0, got \(options.maxNewTokens)") }
        if let k = options.topK, k < 1 { throw PipelineError("top_k must be >= 1, got \(k)") }
        guard options.temperature >= 0, options.temperature.isFinite else {
            throw PipelineError("temperature must be >= 0, got \(options.temperature)")
        }
        for (r, p) in prompts.enumerated() {
            guard !p.isEmpty else { throw PipelineError("prompt \(r) is empty") }
            for (i, t) in p.enumerated() where t < 0 || Int(t) >= config.vocabSize {
                throw PipelineError("token id \(t) at prompt \(r), position \(i) is outside the vocabulary 0..<\(config.vocabSize)")
            }
        }
    }

    /// The book's choice: top-k filter, then temperature sampling or (temperature 0) argmax.
    func chooseToken(_ logits: [Float], _ options: GenerationOptions, _ rng: inout SeededGenerator) -> Int32 {
        var l = logits
        if let k = options.topK, k < l.count {
            let kth = l.sorted(by: >)[k - 1]
            for i in 0..<l.count where l[i] < kth { l[i] = -.infinity }
        }
        if options.temperature > 0 {
            let mx = l.max()!
            var probs = l.map { Double(expf(($0 - mx) / options.temperature)) }
            let total = probs.reduce(0, +)
            for i in 0..<probs.count { probs[i] /= total }
            let u = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
            var cum = 0.0
            for (i, p) in probs.enumerated() where p > 0 {
                cum += p
                if u < cum { return Int32(i) }
            }
            return Int32(probs.lastIndex(where: { $0 > 0 })!)
        }
        var best = 0
        for i in 1..<l.count where l[i] > l[best] { best = i }   // first maximum, like torch.argmax
        return Int32(best)
    }

    /// Runs the query tokens of every segment through the model, writing their keys and values
    /// into the cache, and returns the logits of each segment's last token [segments, V].
    func decode(_ segments: [DecodeSegment], cache: KVCache) -> FloatBuffer {
        let rows = DecodeRows(segments)
        let a = DecodeActivations(rows: rows.count, width: config.embDim, heads: config.nHeads, segments: segments)
        embedDecodeRows(rows, into: a.x)
        for l in 0..<config.nLayers {
            let pre = "h.\(l)."
            decodeQueriesKeysValues(pre, rows, a, cache: cache, layer: l)
            decodeAttention(segments, rows, a, cache: cache, layer: l)
            decodeProjectionAndMLP(pre, rows: rows.count, a)
        }
        return decodeLogits(segments, rows, x: a.x)
    }

    private func decodeLinearWeight(_ name: String) -> LinearWeight {
        if let q = quantizedBase?[name] { return .quantized(q) }
        return .dense(decodeParameter(name))
    }

    private func decodeParameter(_ name: String) -> UnsafeMutablePointer<Float> {
        params.base + layout.spec(named: name)!.offset
    }

    /// Token plus position embedding of every decode row.
    private func embedDecodeRows(_ rows: DecodeRows, into x: FloatBuffer) {
        let C = config.embDim, toks = rows.toks, posOf = rows.posOf
        let embedding = embeddingRows()
        for i in 0..<rows.count { embedding.write(token: toks[i], position: posOf[i], into: x.base + i * C) }
    }

    /// ln_1 and c_attn of block `pre` over the decode rows into `a.qkv`; each row's key and value
    /// are written into the cache at its own row and position.
    private func decodeQueriesKeysValues(_ pre: String, _ rows: DecodeRows, _ a: DecodeActivations, cache: KVCache, layer l: Int) {
        let C = config.embDim, M = rows.count, ctx = cache.context, rowOf = rows.rowOf, posOf = rows.posOf
        let w = decodeParameter
        layerNormForward(a.x.base, rows: M, dim: C, weight: w(pre + "ln_1.weight"), bias: w(pre + "ln_1.bias"),
                         out: a.ln.base, mean: nil, rstd: nil)
        linearForward(a.ln.base, rows: M, inDim: C, outDim: 3 * C, weight: decodeLinearWeight(pre + "attn.c_attn.weight"),
                      bias: layout.spec(named: pre + "attn.c_attn.bias").map { params.base + $0.offset }, out: a.qkv.base)
        lora?.forward(pre + "attn.c_attn", x: a.ln.base, rows: M, ldOut: 3 * C, out: a.qkv.base)
        let kc = cache.keys[l].base, vc = cache.values[l].base, qkv = a.qkv.base
        for i in 0..<M {
            let dst = (rowOf[i] * ctx + posOf[i]) * C
            (kc + dst).update(from: qkv + i * 3 * C + C, count: C)
            (vc + dst).update(from: qkv + i * 3 * C + 2 * C, count: C)
        }
    }

    /// Causal attention of every (segment, head) over its cache row's keys and values up to each
    /// query's position, into `a.y`.
    private func decodeAttention(_ segments: [DecodeSegment], _ rows: DecodeRows, _ a: DecodeActivations, cache: KVCache, layer l: Int) {
        let C = config.embDim, H = config.nHeads, hd = config.headDim, ctx = cache.context
        let scale = 1 / Float(hd).squareRoot()
        let firstRow = rows.firstRow, scoreOffset = a.scoreOffset
        let kc = cache.keys[l].base, vc = cache.values[l].base
        BLASThreads.set(1)
        let qkvB = a.qkv.base, yB = a.y.base, sB = a.scores.base
        parallelRows(segments.count * H, grain: 1) { r in
            for sh in r {
                let s = sh / H, h = sh % H
                let seg = segments[s]
                let n = seg.tokens.count, keys = seg.start + n
                let q = qkvB + firstRow[s] * 3 * C + h * hd
                let kRow = kc + seg.row * ctx * C + h * hd, vRow = vc + seg.row * ctx * C + h * hd
                let sc = sB + scoreOffset[s] + h * n * keys
                sgemm(transB: true, M: n, N: keys, K: hd, alpha: scale, A: q, lda: 3 * C, B: kRow, ldb: C,
                      beta: 0, C: sc, ldc: keys)
                for i in 0..<n {
                    let row = sc + i * keys
                    let visible = seg.start + i + 1
                    let sum = expShiftInPlace(row, visible, shift: rowMax(row, visible))
                    let inv = 1 / sum
                    for j in 0..<visible { row[j] *= inv }
                    for j in visible..<keys { row[j] = 0 }
                }
                sgemm(M: n, N: hd, K: keys, A: sc, lda: keys, B: vRow, ldb: C, beta: 0,
                      C: yB + firstRow[s] * C + h * hd, ldc: C)
            }
        }
    }

    /// The rest of block `pre`: c_proj and its residual, ln_2, the MLP and its residual, into `a.x`.
    private func decodeProjectionAndMLP(_ pre: String, rows M: Int, _ a: DecodeActivations) {
        let C = config.embDim
        let w = decodeParameter
        linearForward(a.y.base, rows: M, inDim: C, outDim: C, weight: decodeLinearWeight(pre + "attn.c_proj.weight"),
                      bias: w(pre + "attn.c_proj.bias"), out: a.tmp.base)
        lora?.forward(pre + "attn.c_proj", x: a.y.base, rows: M, ldOut: C, out: a.tmp.base)
        addInPlace(a.x.base, a.tmp.base, count: M * C)
        layerNormForward(a.x.base, rows: M, dim: C, weight: w(pre + "ln_2.weight"), bias: w(pre + "ln_2.bias"),
                         out: a.ln.base, mean: nil, rstd: nil)
        linearForward(a.ln.base, rows: M, inDim: C, outDim: 4 * C, weight: decodeLinearWeight(pre + "mlp.c_fc.weight"),
                      bias: w(pre + "mlp.c_fc.bias"), out: a.fc.base)
        lora?.forward(pre + "mlp.c_fc", x: a.ln.base, rows: M, ldOut: 4 * C, out: a.fc.base)
        geluForward(a.fc.base, count: M * 4 * C, out: a.gelu.base)
        linearForward(a.gelu.base, rows: M, inDim: 4 * C, outDim: C, weight: decodeLinearWeight(pre + "mlp.c_proj.weight"),
                      bias: w(pre + "mlp.c_proj.bias"), out: a.tmp.base)
        lora?.forward(pre + "mlp.c_proj", x: a.gelu.base, rows: M, ldOut: C, out: a.tmp.base)
        addInPlace(a.x.base, a.tmp.base, count: M * C)
    }

    /// Final norm and head only for each segment's last token: the logits [segments, V].
    private func decodeLogits(_ segments: [DecodeSegment], _ rows: DecodeRows, x: FloatBuffer) -> FloatBuffer {
        let C = config.embDim, V = config.vocabSize, S = segments.count
        let last = FloatBuffer(count: S * C, zeroed: false), lastNorm = FloatBuffer(count: S * C, zeroed: false)
        for (s, seg) in segments.enumerated() {
            (last.base + s * C).update(from: x.base + (rows.firstRow[s] + seg.tokens.count - 1) * C, count: C)
        }
        layerNormForward(last.base, rows: S, dim: C, weight: decodeParameter("ln_f.weight"), bias: decodeParameter("ln_f.bias"),
                         out: lastNorm.base, mean: nil, rstd: nil)
        let wte = decodeParameter("wte.weight")
        let logits = FloatBuffer(count: S * V, zeroed: false)
        if let q = quantizedBase?["wte.weight"] {
            linearForward(lastNorm.base, rows: S, inDim: C, outDim: V, weight: .quantized(q), bias: nil, out: logits.base)
        } else if S == 1 {   // matrix-vector product: see linearForward
            parallelSgemv(transposed: false, rows: V, cols: C, A: wte, x: lastNorm.base, beta: 0, y: logits.base)
        } else {
            parallelSgemm(transB: true, M: S, N: V, K: C, A: lastNorm.base, lda: C, B: wte, ldb: C, beta: 0, C: logits.base, ldc: V)
        }
        lora?.forward("lm_head", x: lastNorm.base, rows: S, ldOut: V, out: logits.base)
        return logits
    }
}

/// The query tokens of all segments as one list of rows: segment s holds rows
/// firstRow[s]..<firstRow[s] + its token count; row i is token toks[i] at position posOf[i] of
/// cache row rowOf[i].
private struct DecodeRows {
    var firstRow: [Int] = []
    var rowOf: [Int] = [], posOf: [Int] = [], toks: [Int32] = []

    init(_ segments: [DecodeSegment]) {
        for seg in segments {
            firstRow.append(toks.count)
            for (j, t) in seg.tokens.enumerated() {
                rowOf.append(seg.row); posOf.append(seg.start + j); toks.append(t)
            }
        }
    }

    var count: Int { toks.count }
}

/// The activations of one decode call's rows, reused by every layer.
private struct DecodeActivations {
    let x, ln, qkv, y, tmp, fc, gelu: FloatBuffer
    /// One score block [n, start + n] per (segment, head); segment s's blocks start at scoreOffset[s].
    let scoreOffset: [Int]
    let scores: FloatBuffer

    init(rows M: Int, width C: Int, heads H: Int, segments: [DecodeSegment]) {
        x = FloatBuffer(count: M * C, zeroed: false); ln = FloatBuffer(count: M * C, zeroed: false)
        qkv = FloatBuffer(count: M * 3 * C, zeroed: false); y = FloatBuffer(count: M * C, zeroed: false)
        tmp = FloatBuffer(count: M * C, zeroed: false); fc = FloatBuffer(count: M * 4 * C, zeroed: false)
        gelu = FloatBuffer(count: M * 4 * C, zeroed: false)
        var scoreOffset: [Int] = []
        var scoreTotal = 0
        for seg in segments {
            scoreOffset.append(scoreTotal)
            scoreTotal += seg.tokens.count * (seg.start + seg.tokens.count) * H
        }
        self.scoreOffset = scoreOffset
        scores = FloatBuffer(count: scoreTotal, zeroed: false)
    }
}

/// Query tokens of one sequence: `tokens` sit at positions start..<start+count of cache row `row`.
struct DecodeSegment {
    var row: Int
    var start: Int
    var tokens: [Int32]
}

/// Keys and values of every layer: [rows, context, C] each, heads as headDim-wide column groups.
final class KVCache {
    let keys: [FloatBuffer]
    let values: [FloatBuffer]
    let context: Int
    init(layers: Int, rows: Int, context: Int, width: Int) {
        self.context = context
        keys = (0..<layers).map { _ in FloatBuffer(count: rows * context * width, zeroed: false) }
        values = (0..<layers).map { _ in FloatBuffer(count: rows * context * width, zeroed: false) }
    }
}

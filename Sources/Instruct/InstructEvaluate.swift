import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights
import TrainingKit

/// Inputs and switches of `evaluate instruct`.
public struct InstructEvaluateOptions {
    /// Output folder of `train instruct`.
    public var model: URL
    /// Output folder of `prepare instruct`.
    public var prepared: URL
    public var output: URL
    /// Tokenizer folder (encoder.json, vocab.bpe).
    public var vocabDirectory: URL
    /// Batch size of the losses (the book's loaders: 8, file order, last batch kept).
    public var batchSize = 8
    /// Prompts generated together (one KV-cached batch). 32: each decoding step is then a real
    /// matrix product (batch 8 is bound by streaming the weights), and measured throughput stopped
    /// growing beyond it while the cache keeps growing (docs/instruct.md).
    public var generationBatch = 32
    /// The book's max_new_tokens.
    public var maxNewTokens = 256
    /// Only the first this many test entries get responses (nil: all, as the book).
    public var limit: Int?
    /// The judge model; nil: no judge (the default).
    public var judge: JudgeOptions?

    public init(model: URL, prepared: URL, output: URL, vocabDirectory: URL) {
        self.model = model
        self.prepared = prepared
        self.output = output
        self.vocabDirectory = vocabDirectory
    }
}

/// One test entry's scores (a line of scores.jsonl).
public struct InstructScoreRecord: Codable, Equatable, Sendable {
    public var index: Int
    public var tokenF1: Double
    public var rougeL: Double
    public var newTokens: Int
    public var stoppedAtEndOfText: Bool
    /// The judge's 0-100 rating; nil without a judge or when its reply was not a number.
    public var judgeScore: Int?
    /// The judge's reply when it was not a score.
    public var judgeReply: String?

    enum CodingKeys: String, CodingKey {
        case index, tokenF1 = "token_f1", rougeL = "rouge_l", newTokens = "new_tokens",
             stoppedAtEndOfText = "stopped_at_endoftext", judgeScore = "judge_score", judgeReply = "judge_reply"
    }
}

public struct InstructEvaluateResult {
    public var metrics: [String: JSONValue]
    public var responses: [String]
    public var scores: [InstructScoreRecord]
    /// Why the judge was not used or stopped (nil: off or fine).
    public var judgeProblem: String?
    public var files: [String]
}

/// `evaluate instruct`: the losses of section 7.6, the responses of section 7.7 for every test
/// entry, word-overlap scores and optionally the judge of section 7.8.
public enum InstructEvaluateStage {
    public static let manifestFormat = "instruct-evaluation"
    public static let manifestVersion = 1
    public static let responsesFile = "instruction-data-with-response.json"
    public static let metricsFile = "metrics.json"
    public static let scoresFile = "scores.jsonl"
    public static let lossPlotFile = "loss.svg"

    public static func run(_ o: InstructEvaluateOptions, progress: (String) -> Void = { _ in }) throws -> InstructEvaluateResult {
        guard o.batchSize >= 1, o.generationBatch >= 1, o.maxNewTokens >= 1 else {
            throw PipelineError("batch_size, generation_batch and max_new_tokens must be at least 1", location: "evaluate")
        }
        let modelURL = o.model.appendingPathComponent(InstructTrainStage.modelFile)
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            throw PipelineError("no trained model here", location: modelURL.path, hint: "run `train instruct` first")
        }
        let ckpt = try loadCheckpointWithLoRA(from: modelURL)
        guard ckpt.layout.head == .languageModel else {
            throw PipelineError("this checkpoint has a classification head, not the language-model head", location: modelURL.path,
                                hint: "evaluate a classifier with `evaluate report`; `evaluate instruct` needs `train instruct`'s output")
        }
        let settings = try ckpt.metadata[InstructTrainStage.settingsKey].map {
            try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8))
        }
        let maskInstructions = settings?["mask_instructions"].flatMap { if case .bool(let b) = $0 { return b } else { return nil } } ?? false
        let cut = ckpt.metadata[InstructTrainStage.allowedMaxLengthKey].flatMap(Int.init) ?? min(1024, ckpt.layout.config.contextLength)

        let data = try InstructionDataset(directory: o.prepared)
        let style = data.style ?? .alpaca
        if let trained = ckpt.metadata[InstructTrainStage.styleKey], trained != style.rawValue {
            throw PipelineError("the model was trained on \(trained) prompts, the prepared data uses \(style.rawValue)", location: o.prepared.path,
                                hint: "evaluate with the data the model was trained on, or retrain")
        }
        let valURL = o.prepared.appendingPathComponent("validation.bin")
        if let want = ckpt.metadata["validation_shard_sha256"], want != (try FileHash.sha256(of: valURL)) {
            throw PipelineError("validation.bin is not the one the model was trained with", location: valURL.path,
                                hint: "rerun `train instruct` on this prepared data (or point --prepared at the data it was trained on)")
        }
        try checkTokenizer(o.vocabDirectory, against: data.manifest, prepared: o.prepared)
        let tokenizer = try GPT2BPETokenizer(directory: o.vocabDirectory)
        let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
        // A LoRA run's adapters are applied at run time (the tied head cannot be merged into wte).
        if let lora = ckpt.lora { try model.attachLoRA(lora) }
        let config = ckpt.layout.config
        let validation = try data.shard(.validation), test = try data.shard(.test)
        try InstructTrainStage.checkTokens(validation, "validation", config: config, dir: o.prepared)
        try InstructTrainStage.checkTokens(test, "test", config: config, dir: o.prepared)
        var entries = try data.entries(.test)
        guard entries.count == test.rowCount else {
            throw PipelineError("test.json has \(entries.count) entries but test.bin \(test.rowCount) rows", location: o.prepared.path,
                                hint: "rerun `prepare instruct`")
        }

        // Section 7.6: calc_loss_loader over every batch (file order, last batch kept).
        func meanLoss(_ shard: InstructionShard) throws -> Double {
            var total = 0.0, batches = 0
            for start in stride(from: 0, to: shard.rowCount, by: o.batchSize) {
                let b = collateInstructionBatch(shard, indices: Array(start..<min(start + o.batchSize, shard.rowCount)),
                                                allowedMaxLength: cut, maskPrompt: maskInstructions)
                total += Double(try model.loss(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen, objective: .languageModel(targets: b.targets)))
                batches += 1
            }
            return batches == 0 ? .nan : total / Double(batches)
        }
        let lossStart = Date()
        let valLoss = try meanLoss(validation)
        let testLoss = try meanLoss(test)
        let lossSeconds = Date().timeIntervalSince(lossStart)
        progress(String(format: "validation loss %.4f (perplexity %.2f), test loss %.4f (perplexity %.2f) in %.1fs",
                        valLoss, exp(valLoss), testLoss, exp(testLoss), lossSeconds))

        // Section 7.7: greedy responses, stopping at <|endoftext|>, with the KV cache.
        if let limit = o.limit { entries = Array(entries.prefix(max(0, limit))) }
        let prompts = entries.map { formatPrompt($0, style: style) }
        let promptIDs = prompts.map { tokenizer.encodeOrdinary($0).map(Int32.init) }
        let options = GenerationOptions(maxNewTokens: o.maxNewTokens, temperature: 0, eosId: Int32(GPT2BPETokenizer.endOfTextID))
        var generated: [[Int32]] = []
        let genStart = Date()
        for start in stride(from: 0, to: promptIDs.count, by: o.generationBatch) {
            let chunk = Array(promptIDs[start..<min(start + o.generationBatch, promptIDs.count)])
            generated += try model.generate(prompts: chunk, options: options)
            progress(String(format: "generated %d/%d responses (%.0fs)", generated.count, promptIDs.count, Date().timeIntervalSince(genStart)))
        }
        let genSeconds = Date().timeIntervalSince(genStart)
        let newTokens = generated.reduce(0) { $0 + $1.count }
        var responses: [String] = []
        for (i, ids) in generated.enumerated() {
            let text = try tokenizer.decode((promptIDs[i] + ids).map(Int.init))
            responses.append(extractResponse(generatedText: text, promptText: prompts[i], marker: style.responseMarker))
        }
        var scores = entries.indices.map { i in
            InstructScoreRecord(index: i, tokenF1: OverlapScore.tokenF1(response: responses[i], reference: entries[i].output),
                                rougeL: OverlapScore.rougeL(response: responses[i], reference: entries[i].output),
                                newTokens: generated[i].count, stoppedAtEndOfText: generated[i].count < o.maxNewTokens)
        }

        // Section 7.8: the judge, when asked for. An unreachable endpoint stops the judging, not the evaluation.
        var judgeInfo: [String: JSONValue] = ["status": "off"]
        var judgeProblem: String? = nil
        if let j = o.judge {
            judgeInfo = ["url": .string(j.url), "model": .string(j.model)]
            var parsed: [Int] = []
            do {
                for i in entries.indices {
                    let reply = try Judge.ask(Judge.prompt(entry: entries[i], modelResponse: responses[i]), options: j)
                    if let s = Judge.parseScore(reply) {
                        scores[i].judgeScore = s
                        parsed.append(s)
                    } else {
                        scores[i].judgeReply = String(reply.prefix(200))
                    }
                    if (i + 1) % 10 == 0 { progress("judged \(i + 1)/\(entries.count)") }
                }
                judgeInfo["status"] = "ok"
            } catch let e as JudgeUnavailable {
                judgeProblem = "judge unavailable: \(e.message); the other metrics are still written"
                judgeInfo["status"] = "unavailable"
                judgeInfo["reason"] = .string(e.message)
                for i in scores.indices { scores[i].judgeScore = nil; scores[i].judgeReply = nil }
                parsed = []
            }
            if judgeInfo["status"] == "ok" {
                judgeInfo["scored"] = .int(parsed.count)
                judgeInfo["unparsed"] = .int(entries.count - parsed.count)
                judgeInfo["mean"] = parsed.isEmpty ? .null : .double(Double(parsed.reduce(0, +)) / Double(parsed.count))
            }
        }

        func num(_ v: Double) -> JSONValue { v.isFinite ? .double(v) : .null }
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        let metrics: [String: JSONValue] = [
            "validation": ["loss": num(valLoss), "perplexity": num(exp(valLoss)), "rows": .int(validation.rowCount)],
            "test": ["loss": num(testLoss), "perplexity": num(exp(testLoss)), "rows": .int(test.rowCount)],
            "overlap": ["token_f1_mean": num(mean(scores.map(\.tokenF1))), "rouge_l_mean": num(mean(scores.map(\.rougeL))),
                        "words": "lowercase alphanumeric runs", "responses": .int(scores.count)],
            "judge": .object(judgeInfo),
            "generation": ["responses": .int(responses.count), "new_tokens": .int(newTokens), "seconds": num(genSeconds),
                           "tokens_per_second": num(Double(newTokens) / genSeconds), "max_new_tokens": .int(o.maxNewTokens),
                           "batch": .int(o.generationBatch), "stopped_at_endoftext": .int(scores.filter(\.stoppedAtEndOfText).count),
                           "kv_cache": true, "decoding": "greedy"],
            "loss_seconds": num(lossSeconds),
        ]

        try FileManager.default.createDirectory(at: o.output, withIntermediateDirectories: true)
        var files = [responsesFile, scoresFile, metricsFile]
        try AtomicFile.write(responsesJSON(entries, responses), to: o.output.appendingPathComponent(responsesFile))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Data(try scores.map { String(decoding: try enc.encode($0), as: UTF8.self) + "\n" }.joined().utf8),
                             to: o.output.appendingPathComponent(scoresFile))
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        try AtomicFile.write(try enc.encode(JSONValue.object(metrics)) + Data("\n".utf8), to: o.output.appendingPathComponent(metricsFile))
        let logURL = o.model.appendingPathComponent(InstructTrainStage.logFile)
        if let log = try? LogRecord.readLog(logURL), !log.isEmpty {
            let perEpoch = Double(log.last.map { $0.examplesSeen } ?? 0) / max(log.last?.epochProgress ?? 1, 1e-9)
            try AtomicFile.write(Data(TrainingPlots.loss(log, examplesPerEpoch: perEpoch).svg().utf8), to: o.output.appendingPathComponent(lossPlotFile))
            files.append(lossPlotFile)
        }

        var inputs = try [modelURL, o.prepared.appendingPathComponent("validation.bin"), o.prepared.appendingPathComponent("test.bin"),
                          o.prepared.appendingPathComponent("test.json"), o.prepared.appendingPathComponent(Manifest.fileName)]
            .map { try FileRecord.of($0, as: $0.path) }
        if files.contains(lossPlotFile) { inputs.append(try FileRecord.of(logURL, as: logURL.path)) }
        let outputs = try files.map { try FileRecord.of(o.output.appendingPathComponent($0), as: $0) }
        var params: [String: JSONValue] = ["batch_size": .int(o.batchSize), "generation_batch": .int(o.generationBatch),
                                           "max_new_tokens": .int(o.maxNewTokens), "limit": o.limit.map { .int($0) } ?? .null,
                                           "judge_url": o.judge.map { .string($0.url) } ?? .null,
                                           "judge_model": o.judge.map { .string($0.model) } ?? .null]
        params["prompt_style"] = .string(style.rawValue)
        let manifest = Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "evaluate instruct", params: params,
                                inputs: inputs, outputs: outputs, stats: metrics)
        try manifest.write(into: o.output)
        return InstructEvaluateResult(metrics: metrics, responses: responses, scores: scores, judgeProblem: judgeProblem,
                                      files: files + [Manifest.fileName])
    }

    /// The tokenizer files must be the ones `prepare instruct` used (their hashes are in its manifest).
    static func checkTokenizer(_ vocab: URL, against manifest: Manifest, prepared: URL) throws {
        for name in ["encoder.json", "vocab.bpe"] {
            let url = vocab.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError("the tokenizer file \(name) is missing", location: url.path,
                                    hint: "pass --vocab with the folder holding encoder.json and vocab.bpe (e.g. data/instruct-raw/gpt2)")
            }
            guard let record = manifest.inputs.first(where: { $0.path.hasSuffix(name) }) else { continue }
            let got = try FileHash.sha256(of: url)
            if got != record.sha256 {
                throw PipelineError("\(name) differs from the one the data was prepared with (\(record.path))", location: url.path,
                                    hint: "use the same GPT-2 vocabulary as `prepare instruct`")
            }
        }
    }

    /// The book's `json.dump(test_data, file, indent=4)`: the entries plus `model_response`, with
    /// Python's default ensure_ascii (non-ASCII as \uXXXX escapes), 4-space indentation.
    public static func responsesJSON(_ entries: [InstructionEntry], _ responses: [String]) -> Data {
        var out = "[\n"
        for (i, e) in entries.enumerated() {
            out += "    {\n"
            out += "        \"instruction\": \(pythonJSONString(e.instruction)),\n"
            out += "        \"input\": \(pythonJSONString(e.input)),\n"
            out += "        \"output\": \(pythonJSONString(e.output)),\n"
            out += "        \"model_response\": \(pythonJSONString(responses[i]))\n"
            out += i + 1 < entries.count ? "    },\n" : "    }\n"
        }
        out += "]"  // json.dump writes no final newline
        return Data((entries.isEmpty ? "[]" : out).utf8)
    }

    /// A string literal as Python's json.dumps writes it with ensure_ascii=True.
    public static func pythonJSONString(_ s: String) -> String { JSONText.string(s, asciiOnly: true) }
}

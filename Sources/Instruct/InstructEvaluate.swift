import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights
import Quantization
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
    /// Losses and decoding over the base's Linear weights quantized (nf4 / int8, the tied
    /// embedding int8), read packed by the kernels; none: float32.
    public var quantize: BaseQuantization = .none

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

    /// The trained model and what its checkpoint says about its training.
    /// A trained instruction model as `evaluate instruct` and `serve` load it.
    public struct Trained {
        public var model: GPT2Model
        public var settings: InstructSettings
        /// The collate cut used in training (allowed_max_length, at most the context).
        public var cut: Int
        public var modelURL: URL
        public var metadata: [String: String]

        /// The prompt template the model was trained with (Alpaca when the checkpoint does not say).
        public var style: PromptStyle {
            metadata[InstructTrainStage.styleKey].flatMap(PromptStyle.init(rawValue:)) ?? .alpaca
        }
    }

    /// The prepared data the model is evaluated on.
    struct PreparedRows {
        var style: PromptStyle
        var validation: InstructionShard
        var test: InstructionShard
        var entries: [InstructionRecord]
        var manifest: Manifest
    }

    public static func run(_ o: InstructEvaluateOptions, progress: @escaping ProgressHandler = silentProgress) throws -> InstructEvaluateResult {
        guard o.batchSize >= 1, o.generationBatch >= 1, o.maxNewTokens >= 1 else {
            throw PipelineError("batch_size, generation_batch and max_new_tokens must be at least 1", location: "evaluate")
        }
        let trained = try loadModel(o.model)
        if let type = o.quantize.type {
            let q = try trained.model.quantizeBase(type)
            progress(.note("base quantized to \(type.rawValue) for this evaluation (the tied embedding int8): \(TextFormat.bytes(q.byteCount))"))
        }
        let data = try loadData(o, trained: trained)
        let tokenizer = try GPT2BPETokenizer(directory: o.vocabDirectory)
        // Section 7.6: calc_loss_loader over every batch (file order, last batch kept).
        let lossStart = Date()
        let valLoss = try meanLoss(data.validation, trained, batchSize: o.batchSize)
        let testLoss = try meanLoss(data.test, trained, batchSize: o.batchSize)
        let lossSeconds = Date().timeIntervalSince(lossStart)
        progress(.note(String(format: "validation loss %.4f (perplexity %.2f), test loss %.4f (perplexity %.2f) in %.1fs",
                              valLoss, exp(valLoss), testLoss, exp(testLoss), lossSeconds)))
        let entries = o.limit.map { Array(data.entries.prefix(max(0, $0))) } ?? data.entries
        let generation = try respond(to: entries, style: data.style, model: trained.model, tokenizer: tokenizer, o, progress: progress)
        var scores = overlapScores(entries, generation, maxNewTokens: o.maxNewTokens)
        let judge = o.judge.map { judgeResponses(entries, generation.responses, scores: &scores, options: $0, progress: progress) }
        var metrics: [String: JSONValue] = [
            "validation": ["loss": .number(valLoss), "perplexity": .number(exp(valLoss)), "rows": .int(data.validation.rowCount)],
            "test": ["loss": .number(testLoss), "perplexity": .number(exp(testLoss)), "rows": .int(data.test.rowCount)],
            "overlap": ["token_f1_mean": .number(mean(scores.map(\.tokenF1))), "rouge_l_mean": .number(mean(scores.map(\.rougeL))),
                        "words": "lowercase alphanumeric runs", "responses": .int(scores.count)],
            "judge": .object(judge?.info ?? ["status": "off"]),
            "loss_seconds": .number(lossSeconds),
        ]
        metrics["generation"] = generation.metrics(scores: scores, o)
        let files = try writeOutputs(o, entries: entries, responses: generation.responses, scores: scores, metrics: metrics)
        try writeManifest(o, trained: trained, style: data.style, files: files, metrics: metrics)
        return InstructEvaluateResult(metrics: metrics, responses: generation.responses, scores: scores, judgeProblem: judge?.problem,
                                      files: files + [Manifest.fileName])
    }

    /// The checkpoint of `train instruct`, its settings decoded, adapters attached (a LoRA run's
    /// adapters run beside the base weights: the tied head cannot be merged into wte).
    public static func loadModel(_ dir: URL) throws -> Trained {
        let modelURL = dir.appendingPathComponent(InstructTrainStage.modelFile)
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            throw PipelineError("no trained model here", location: modelURL.path, hint: "run `train instruct` first")
        }
        let ckpt = try loadCheckpointWithLoRA(from: modelURL)
        guard ckpt.layout.head == .languageModel else {
            throw PipelineError("this checkpoint has a classification head, not the language-model head", location: modelURL.path,
                                hint: "evaluate a classifier with `evaluate report`; `evaluate instruct` needs `train instruct`'s output")
        }
        let settings = try ckpt.metadata[InstructTrainStage.settingsKey].map {
            try InstructSettings.decode($0, source: modelURL.path + " (" + InstructTrainStage.settingsKey + ")")
        } ?? InstructSettings()
        let cut = ckpt.metadata[InstructTrainStage.allowedMaxLengthKey].flatMap(Int.init) ?? min(1024, ckpt.layout.config.contextLength)
        let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
        if let lora = ckpt.lora { try model.attachLoRA(lora) }
        return Trained(model: model, settings: settings, cut: cut, modelURL: modelURL, metadata: ckpt.metadata)
    }

    /// The prepared data, checked against what the model was trained on and against the tokenizer.
    static func loadData(_ o: InstructEvaluateOptions, trained: Trained) throws -> PreparedRows {
        let data = try InstructionDataset(directory: o.prepared)
        let style = data.style ?? .alpaca
        let meta = trained.metadata
        if let styleUsed = meta[InstructTrainStage.styleKey], styleUsed != style.rawValue {
            throw PipelineError("the model was trained on \(styleUsed) prompts, the prepared data uses \(style.rawValue)", location: o.prepared.path,
                                hint: "evaluate with the data the model was trained on, or retrain")
        }
        let valURL = o.prepared.appendingPathComponent("validation.bin")
        if let want = meta["validation_shard_sha256"], want != (try FileHash.sha256(of: valURL)) {
            throw PipelineError("validation.bin is not the one the model was trained with", location: valURL.path,
                                hint: "rerun `train instruct` on this prepared data (or point --prepared at the data it was trained on)")
        }
        try data.manifest.checkTokenizer(vocabDirectory: o.vocabDirectory, stage: "prepare instruct")
        let config = trained.model.layout.config
        let validation = try data.shard(.validation), test = try data.shard(.test)
        try InstructTrainStage.checkTokens(validation, "validation", config: config, dir: o.prepared)
        try InstructTrainStage.checkTokens(test, "test", config: config, dir: o.prepared)
        let entries = try data.entries(.test)
        guard entries.count == test.rowCount else {
            throw PipelineError("test.json has \(entries.count) entries but test.bin \(test.rowCount) rows", location: o.prepared.path,
                                hint: "rerun `prepare instruct`")
        }
        return PreparedRows(style: style, validation: validation, test: test, entries: entries, manifest: data.manifest)
    }

    /// The book's `calc_loss_loader`: the mean of the batch-mean losses over every batch in file order.
    static func meanLoss(_ shard: InstructionShard, _ trained: Trained, batchSize: Int) throws -> Double {
        var total = 0.0, batches = 0
        for start in stride(from: 0, to: shard.rowCount, by: batchSize) {
            let b = collateInstructionBatch(shard, indices: Array(start..<min(start + batchSize, shard.rowCount)),
                                            allowedMaxLength: trained.cut, maskPrompt: trained.settings.maskInstructions)
            total += Double(try trained.model.loss(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen,
                                                   objective: .languageModel(targets: b.targets)))
            batches += 1
        }
        return batches == 0 ? .nan : total / Double(batches)
    }

    /// Section 7.7's responses: greedy, stopping at <|endoftext|>, KV-cached, in batches.
    struct Generation {
        var responses: [String]
        var newTokens: [Int]
        var seconds: Double

        func metrics(scores: [InstructScoreRecord], _ o: InstructEvaluateOptions) -> JSONValue {
            let total = newTokens.reduce(0, +)
            return ["responses": .int(responses.count), "new_tokens": .int(total), "seconds": .number(seconds),
                    "tokens_per_second": .number(Double(total) / seconds), "max_new_tokens": .int(o.maxNewTokens),
                    "batch": .int(o.generationBatch), "stopped_at_endoftext": .int(scores.filter(\.stoppedAtEndOfText).count),
                    "kv_cache": true, "decoding": "greedy"]
        }
    }

    static func respond(to entries: [InstructionRecord], style: PromptStyle, model: GPT2Model, tokenizer: GPT2BPETokenizer,
                        _ o: InstructEvaluateOptions, progress: ProgressHandler) throws -> Generation {
        let prompts = entries.map { formatPrompt($0, style: style) }
        let promptIDs = prompts.map { tokenizer.encodeOrdinary($0).map(Int32.init) }
        let options = GenerationOptions(maxNewTokens: o.maxNewTokens, temperature: 0, eosId: Int32(GPT2BPETokenizer.endOfTextID))
        var generated: [[Int32]] = []
        let start = Date()
        progress(.phase(name: "responses", done: 0, total: promptIDs.count))
        for first in stride(from: 0, to: promptIDs.count, by: o.generationBatch) {
            generated += try model.generate(prompts: Array(promptIDs[first..<min(first + o.generationBatch, promptIDs.count)]), options: options)
            progress(.phase(name: "responses", done: generated.count, total: promptIDs.count))
        }
        let seconds = Date().timeIntervalSince(start)
        let responses = try generated.indices.map { i in
            extractResponse(generatedText: try tokenizer.decode((promptIDs[i] + generated[i]).map(Int.init)), promptText: prompts[i],
                            marker: style.responseMarker, end: style.responseEnd)
        }
        return Generation(responses: responses, newTokens: generated.map(\.count), seconds: seconds)
    }

    static func overlapScores(_ entries: [InstructionRecord], _ g: Generation, maxNewTokens: Int) -> [InstructScoreRecord] {
        entries.indices.map { i in
            InstructScoreRecord(index: i, tokenF1: OverlapScore.tokenF1(response: g.responses[i], reference: entries[i].reference),
                                rougeL: OverlapScore.rougeL(response: g.responses[i], reference: entries[i].reference),
                                newTokens: g.newTokens[i], stoppedAtEndOfText: g.newTokens[i] < maxNewTokens)
        }
    }

    /// Section 7.8: the judge's scores into `scores`; an unreachable endpoint stops the judging,
    /// not the evaluation (`problem` says why, and no score is kept).
    static func judgeResponses(_ entries: [InstructionRecord], _ responses: [String], scores: inout [InstructScoreRecord],
                               options j: JudgeOptions, progress: ProgressHandler) -> (info: [String: JSONValue], problem: String?) {
        var info: [String: JSONValue] = ["url": .string(j.url), "model": .string(j.model)]
        var parsed: [Int] = []
        do {
            for i in entries.indices {
                let reply = try Judge.ask(Judge.prompt(record: entries[i], modelResponse: responses[i]), options: j)
                if let s = Judge.parseScore(reply) {
                    scores[i].judgeScore = s
                    parsed.append(s)
                } else {
                    scores[i].judgeReply = String(reply.prefix(200))
                }
                progress(.phase(name: "judged", done: i + 1, total: entries.count))
            }
        } catch {
            let reason = (error as? JudgeUnavailable)?.message ?? "\(error)"
            for i in scores.indices { scores[i].judgeScore = nil; scores[i].judgeReply = nil }
            info.merge(["status": "unavailable", "reason": .string(reason)]) { $1 }
            return (info, "judge unavailable: \(reason); the other metrics are still written")
        }
        info.merge(["status": "ok", "scored": .int(parsed.count), "unparsed": .int(entries.count - parsed.count),
                    "mean": parsed.isEmpty ? .null : .double(Double(parsed.reduce(0, +)) / Double(parsed.count))]) { $1 }
        return (info, nil)
    }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }

    /// The responses file, scores.jsonl, metrics.json and, when the training log is there, loss.svg.
    static func writeOutputs(_ o: InstructEvaluateOptions, entries: [InstructionRecord], responses: [String],
                             scores: [InstructScoreRecord], metrics: [String: JSONValue]) throws -> [String] {
        try FileManager.default.createDirectory(at: o.output, withIntermediateDirectories: true)
        var files = [responsesFile, scoresFile, metricsFile]
        try AtomicFile.write(responsesJSON(entries, responses), to: o.output.appendingPathComponent(responsesFile))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Data(try scores.map { String(decoding: try enc.encode($0), as: UTF8.self) + "\n" }.joined().utf8),
                             to: o.output.appendingPathComponent(scoresFile))
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        try AtomicFile.write(try enc.encode(JSONValue.object(metrics)) + Data("\n".utf8), to: o.output.appendingPathComponent(metricsFile))
        if let log = try? LogRecord.readLog(o.model.appendingPathComponent(InstructTrainStage.logFile)), !log.isEmpty {
            let plot = TrainingPlots.loss(log, examplesPerEpoch: LogRecord.examplesPerEpoch(log))
            try AtomicFile.write(Data(plot.svg().utf8), to: o.output.appendingPathComponent(lossPlotFile))
            files.append(lossPlotFile)
        }
        return files
    }

    static func writeManifest(_ o: InstructEvaluateOptions, trained: Trained, style: PromptStyle, files: [String],
                              metrics: [String: JSONValue]) throws {
        var read = [trained.modelURL] + ["validation.bin", "test.bin", "test.json", Manifest.fileName].map { o.prepared.appendingPathComponent($0) }
        if files.contains(lossPlotFile) { read.append(o.model.appendingPathComponent(InstructTrainStage.logFile)) }
        let params: [String: JSONValue] = [
            "batch_size": .int(o.batchSize), "generation_batch": .int(o.generationBatch), "max_new_tokens": .int(o.maxNewTokens),
            "limit": o.limit.map { .int($0) } ?? .null, "judge_url": o.judge.map { .string($0.url) } ?? .null,
            "judge_model": o.judge.map { .string($0.model) } ?? .null, "prompt_style": .string(style.rawValue),
        ].merging(o.quantize == .none ? [:] : ["quantize": .string(o.quantize.rawValue)]) { a, _ in a }
        var stats = metrics
        stats["peak_rss_bytes"] = ProcessMemory.peakResidentBytes.map { .int($0) } ?? .null
        try Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "evaluate instruct", params: params,
                     inputs: try FileRecord.inputs(read), outputs: try FileRecord.outputs(files, in: o.output), stats: stats)
            .write(into: o.output)
    }

    /// The book's `json.dump(test_data, file, indent=4)`: the test records in their shape's
    /// canonical keys plus `model_response`, with Python's default ensure_ascii (non-ASCII as
    /// \uXXXX escapes), 4-space indentation, no final newline. A chat keeps all its messages (the
    /// last assistant message is the reference the response is scored against).
    public static func responsesJSON(_ entries: [InstructionRecord], _ responses: [String]) -> Data {
        Data(InstructionRecords.jsonList(entries, responses: responses, asciiOnly: true).utf8)
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import TrainingKit

public struct ClassifierEvaluateOptions {
    /// The `train` output directory (model.safetensors, log.jsonl, manifest.json).
    public var model: URL
    public var prepared: URL
    public var output: URL
    /// Batch size of the book-style loss (mean of batch means).
    public var batchSize = 8
    /// Also write PNG copies of the plots with this converter when it is installed.
    public var pngConverter = "rsvg-convert"
    /// Progress notes (whether the frozen-trunk states were reused, and why not).
    public var progress: ProgressHandler = silentProgress
    /// Bytes the frozen-layer states may take in memory (as `ClassifierSettings.frozenMemoryBudget`).
    public var frozenMemoryBudget = ProcessMemory.physicalBytes / 2

    public init(model: URL, prepared: URL, output: URL) {
        self.model = model
        self.prepared = prepared
        self.output = output
    }
}

public struct ClassifierEvaluateResult {
    public var metrics: [String: SplitMetrics]
    public var files: [String]
    public var pngSkipped: String?
    /// Where the frozen-layer states came from: "read from ...", "computed (why)" or "none (...)".
    public var frozenTrunk: String
}

/// The `evaluate` stage: the trained classifier on the full train, validation and test splits.
public enum ClassifierEvaluateStage {
    public static let manifestFormat = "classifier-evaluation"
    public static let manifestVersion = 1

    /// Loads the trained classifier from a `train` output directory and checks the shards were padded the same way.
    static func loadModel(_ dir: URL, makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend) throws
        -> (ClassifierModel, ClassifierCheckpoint.Loaded) {
        let ckpt = try ClassifierCheckpoint.load(from: dir.appendingPathComponent(ClassifierTrainStage.modelFile))
        let backend = try makeBackend(ckpt.layout, ckpt.parameters)
        // Split where training split: the frozen part (unchanged from the base weights) can then be
        // taken from trunk.bin or run once, and the top runs as in training (the last block at the
        // pooled positions only). A LoRA checkpoint (merged on load) runs every layer.
        let trainable = ckpt.settings.trainableLayers == .lora ? .all : ckpt.settings.trainableLayers
        let model = try ClassifierModel(backend: backend, parameters: ckpt.parameters, pooling: ckpt.settings.pooling, trainable: trainable)
        return (model, ckpt)
    }

    public static func run(_ o: ClassifierEvaluateOptions, makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend) throws -> ClassifierEvaluateResult {
        guard o.batchSize >= 1 else { throw PipelineError("batch size must be at least 1", location: "--batch-size") }
        let (model, ckpt) = try loadModel(o.model, makeBackend: makeBackend)
        let data = try ClassificationDataset.load(from: o.prepared)
        guard data.maxLength == ckpt.maxLength, data.padTokenID == ckpt.padTokenID else {
            throw PipelineError("the model was trained on rows of \(ckpt.maxLength) tokens padded with \(ckpt.padTokenID); these shards have \(data.maxLength) and \(data.padTokenID)",
                                location: o.prepared.path, hint: "evaluate with the prepared data the model was trained on, or retrain")
        }
        try data.check(against: ckpt.layout.config, numClasses: ckpt.numClasses)
        guard !ckpt.hasLabelNames || ckpt.labelNames == data.labelNames else {
            throw PipelineError("the model was trained on the classes \(ckpt.labelNames.joined(separator: ", ")); these shards have \(data.labelNames.joined(separator: ", "))",
                                location: o.prepared.path, hint: "evaluate with the prepared data the model was trained on, or retrain")
        }
        let splits = ClassificationPreparer.splitNames.map { DataSplit(name: $0, rows: data[$0]) }
        let trunkStart = Date()
        let trunk = try frozenStates(o, model: model, splits: splits, shardHashes: data.shardHashes)
        let trunkSeconds = Date().timeIntervalSince(trunkStart)
        var metrics: [String: SplitMetrics] = [:]
        var testLogits: [[Float]] = []
        for split in splits {
            let logits = try ClassifierEvaluation.logits(model: model, split: split)
            metrics[split.name] = ClassifierEvaluation.metrics(logits: logits, labels: split.rows.labels, batchSize: o.batchSize,
                                                               head: model.head, classNames: data.labelNames)
            if split.name == "test" { testLogits = logits }
        }
        let texts = try CSV.texts(of: o.prepared.appendingPathComponent("test.csv"), expectedRows: data.test.rowCount)
        var outputs = OutputFolder(o.output)
        try outputs.put("metrics.json", try prettyJSON(metrics))
        try outputs.put("predictions.csv", ClassifierEvaluation.predictionsCSV(texts: texts, labels: data.test.labels, logits: testLogits,
                                                                                   classNames: data.labelNames))
        let pngSkipped = try writePlots(o, into: &outputs)
        try writeManifest(o, ckpt: ckpt, trunk: trunk, trunkSeconds: trunkSeconds, metrics: metrics, written: outputs.written)
        return ClassifierEvaluateResult(metrics: metrics, files: outputs.written + [Manifest.fileName], pngSkipped: pngSkipped,
                                        frozenTrunk: trunk)
    }

    /// The frozen layers' states: from train's trunk.bin when it belongs to this checkpoint and
    /// these shards, else run once here (same code as train, so the same numbers either way).
    /// Returns where they came from: "read from ...", "computed (why)" or "none (...)".
    static func frozenStates(_ o: ClassifierEvaluateOptions, model: ClassifierModel, splits: [DataSplit],
                             shardHashes: [String: String]) throws -> String {
        guard model.cacheIsExact else { return "none (trainable_layers \(model.trainable.rawValue): nothing frozen)" }
        if let why = model.frozenStatesOverBudget(splits, budget: o.frozenMemoryBudget) {
            o.progress(.note("\(why): the frozen layers run for every batch instead"))
            return "none (\(why))"
        }
        let url = o.model.appendingPathComponent(TrunkStatesFile.fileName)
        if let why = FrozenTrunkArtifact.load(from: url, model: model, splits: splits, shardHashes: shardHashes) {
            o.progress(.note("not using \(TrunkStatesFile.fileName): \(why); running the frozen layers for \(splits.map(\.rows.rowCount).reduce(0, +)) rows"))
            try model.fillCache(splits, progress: o.progress)
            return "computed (\(why))"
        }
        o.progress(.note("frozen-layer states read from \(url.path)"))
        return "read from \(url.path)"
    }

    static func prettyJSON<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(value) + Data("\n".utf8)
    }

    /// Plots from the training log, like the book's plot_values (SVG, and PNG when a converter is
    /// installed). Returns why PNGs or plots were skipped, if they were.
    static func writePlots(_ o: ClassifierEvaluateOptions, into outputs: inout OutputFolder) throws -> String? {
        let logURL = o.model.appendingPathComponent(ClassifierTrainStage.logFile)
        guard FileManager.default.fileExists(atPath: logURL.path) else { return "no training log at \(logURL.path): no plots" }
        let log = try LogRecord.readLog(logURL)
        let perEpoch = LogRecord.examplesPerEpoch(log)
        var pngSkipped: String? = nil
        for (name, plot) in [("loss", TrainingPlots.loss(log, examplesPerEpoch: perEpoch)),
                             ("accuracy", TrainingPlots.accuracy(log, examplesPerEpoch: perEpoch))] {
            try outputs.put("\(name).svg", Data(plot.svg().utf8))
            guard pngSkipped == nil else { continue }
            do {
                try convertToPNG(o.output.appendingPathComponent("\(name).svg"), o.output.appendingPathComponent("\(name).png"),
                                 converter: o.pngConverter)
                outputs.written.append("\(name).png")
            } catch let e as PipelineError { pngSkipped = e.message }
        }
        return pngSkipped
    }

    static func writeManifest(_ o: ClassifierEvaluateOptions, ckpt: ClassifierCheckpoint.Loaded, trunk: String, trunkSeconds: Double,
                              metrics: [String: SplitMetrics], written: [String]) throws {
        let trunkURL = o.model.appendingPathComponent(TrunkStatesFile.fileName)
        let read = ([o.model.appendingPathComponent(ClassifierTrainStage.modelFile)] + (trunk.hasPrefix("read") ? [trunkURL] : []))
            .filter { FileManager.default.fileExists(atPath: $0.path) }
            + ["train.bin", "validation.bin", "test.bin", "test.csv"].map { o.prepared.appendingPathComponent($0) }
        var stats: [String: JSONValue] = ["frozen_trunk": .string(trunk), "frozen_trunk_seconds": .double(trunkSeconds)]
        for (name, m) in metrics {
            stats["\(name)_accuracy"] = .double(m.accuracy)
            stats["\(name)_loss"] = .double(m.loss)
        }
        if let t = metrics["test"] {
            if let f1 = t.f1 { stats["test_f1"] = .double(f1) }
            stats["test_macro_f1"] = .double(t.macro.f1)
            stats["test_weighted_f1"] = .double(t.weighted.f1)
        }
        let pooling = ckpt.settings.pooling
        try Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "evaluate",
                     params: ["batch_size": .int(o.batchSize), "positive_class": metrics["test"]?.positiveClass.map(JSONValue.int) ?? .null,
                              "token_position": .string(pooling.position.rawValue), "average_embeddings": .bool(pooling.averageEmbeddings)],
                     inputs: try FileRecord.inputs(read), outputs: try FileRecord.outputs(written, in: o.output), stats: stats)
            .write(into: o.output)
    }

    /// SVG -> PNG with an external converter (librsvg's rsvg-convert); throws when it is missing or fails.
    public static func convertToPNG(_ svg: URL, _ png: URL, converter: String) throws {
        guard let exe = ExecutableSearch.find(converter) else {
            throw PipelineError("\(converter) is not installed: PNG plots skipped (the SVGs are written)",
                                hint: "apt-get install librsvg2-bin for PNG copies")
        }
        try AtomicFile.write(to: png) { tmp in
            let p = Process()
            p.executableURL = exe
            p.arguments = ["-o", tmp.path, svg.path]
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw PipelineError("\(converter) failed (exit \(p.terminationStatus)): PNG plots skipped", location: svg.path)
            }
        }
    }
}

/// One text in, its class out: the trained classifier with the same truncation and padding as
/// training (the book's `classify_review`).
public final class TextClassifier {
    public let model: ClassifierModel
    public let checkpoint: ClassifierCheckpoint.Loaded

    public init(modelDirectory: URL, makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend) throws {
        (model, checkpoint) = try ClassifierEvaluateStage.loadModel(modelDirectory, makeBackend: makeBackend)
    }

    /// Probabilities of each class for one encoded text. The text is cut to the training max
    /// length and padded to it, as in training; an empty text or one longer than the model's
    /// context is refused.
    public func probabilities(tokens: [Int]) throws -> [Float] {
        let config = checkpoint.layout.config
        guard tokens.count <= config.contextLength else {
            throw PipelineError("the text has \(tokens.count) tokens, more than the model's context of \(config.contextLength)",
                                hint: "shorten the text")
        }
        return try predict([tokens])[0].probabilities
    }

    /// One text's result: its class probabilities and how many of its tokens the model read.
    public struct Prediction: Sendable, Equatable {
        public var probabilities: [Float]
        /// Tokens the text encodes to.
        public var tokens: Int
        /// Tokens the model read: the first min(tokens, training max length).
        public var usedTokens: Int
        public var truncated: Bool { usedTokens < tokens }
    }

    /// Several encoded texts in one call: each is cut to the training max length and padded to
    /// it (the book's `classify_review`), and the rows go through the model together, in passes of
    /// `model.inferenceChunk` rows, so concurrent requests share the matrix products. A row's
    /// result does not depend on the other rows. An empty text is refused.
    public func predict(_ texts: [[Int]]) throws -> [Prediction] {
        let L = checkpoint.maxLength, pad = Int32(checkpoint.padTokenID)
        var tokens: [Int32] = []
        tokens.reserveCapacity(texts.count * L)
        var lengths: [Int] = []
        for (i, text) in texts.enumerated() {
            guard !text.isEmpty else { throw PipelineError("text \(i + 1) is empty (no tokens to classify)") }
            let kept = text.prefix(L)
            tokens += kept.map { Int32($0) } + [Int32](repeating: pad, count: L - kept.count)
            lengths.append(kept.count)
        }
        let rows = LabeledRows(tokens: tokens, labels: [Int](repeating: 0, count: texts.count), lengths: lengths, sequenceLength: L,
                               padTokenID: checkpoint.padTokenID, numClasses: checkpoint.numClasses)
        try rows.validate(vocabSize: checkpoint.layout.config.vocabSize, numClasses: checkpoint.numClasses, source: "text")
        let logits = try model.logits(rows: Array(texts.indices), of: DataSplit(name: "text", rows: rows))
        return texts.indices.map { Prediction(probabilities: softmax(logits[$0]), tokens: texts[$0].count, usedTokens: lengths[$0]) }
    }
}

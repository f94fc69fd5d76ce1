import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import TrainingKit

/// Inputs and switches of the `train` stage.
public struct ClassifierTrainOptions {
    public var prepared: URL
    public var output: URL
    public var settings: ClassifierSettings
    /// Overrides `settings.model` (a JSON config file, or tests' tiny models).
    public var config: GPT2Config?
    /// When given, must equal the number of classes in the shards.
    public var numClasses: Int?
    /// When given, the tokenizer files are checked against the hashes in the shards' manifest.
    public var vocabDirectory: URL?
    /// Whether to continue from `output/state`.
    public var resume = ResumeMode.never
    /// Stop like Ctrl-C after this many steps (tests).
    public var stopAfterSteps: Int?

    public init(prepared: URL, output: URL, settings: ClassifierSettings) {
        self.prepared = prepared
        self.output = output
        self.settings = settings
    }
}

/// What `train` did, for the command to report.
public struct ClassifierTrainResult {
    public var outcome: TrainingOutcome
    /// nil when interrupted (only the resume state was written).
    public var manifest: Manifest?
    public var cacheSeconds: Double
}

/// The `train` stage: shards + base weights in, a fine-tuned classifier checkpoint out.
public enum ClassifierTrainStage {
    public static let manifestFormat = "classifier-training"
    public static let manifestVersion = 1
    public static let modelFile = "model.safetensors"
    public static let logFile = "log.jsonl"

    public static func run(_ o: ClassifierTrainOptions, makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend,
                           reporter: TrainingReporter = SilentReporter()) throws -> ClassifierTrainResult {
        let s = o.settings
        try s.validate()
        let config = try o.config ?? s.modelConfig()
        // The test rows are read too when a frozen trunk exists: their frozen-layer states go into
        // trunk.bin with the others, so `evaluate` runs only the trainable top.
        let sharesTrunk = s.cacheFrozenTrunk && config.dropRate == 0 && !s.trainableLayers.trainsEmbeddings
        let data = try ClassificationDataset.load(from: o.prepared, splits: sharesTrunk ? ClassificationPreparer.splitNames : ["train", "validation"])
        if let vocab = o.vocabDirectory { try data.checkTokenizer(vocabDirectory: vocab) }
        try data.check(against: config, numClasses: o.numClasses)
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: data.numClasses))

        guard config.dropRate == 0 else {
            throw PipelineError("drop_rate \(config.dropRate) is not supported by train yet (the book fine-tunes with 0.0)",
                                location: s.model, hint: "use a model config with drop_rate 0")
        }
        let base = try BaseWeights.load(s, layout: layout)
        let backend = try makeBackend(layout, base.parameters)
        var parameters = base.parameters
        if let lora = s.lora {
            // The book: the new head is drawn, everything is frozen, then every Linear gets an adapter.
            let adapters = try LoRAWeights.initial(for: layout, settings: lora, seed: s.seed)
            try backend.attachLoRA(adapters)
            parameters += adapters.values
            reporter.note("LoRA rank \(lora.rank), alpha \(lora.alpha): \(adapters.values.count) trainable parameters; the \(layout.totalCount) original parameters are frozen (no frozen-layer cache: every block changes)")
        }
        let model = try ClassifierModel(backend: backend, parameters: parameters, pooling: s.pooling,
                                        trainable: s.trainableLayers, trimBatches: s.trimBatches)
        let train = DataSplit(name: "train", rows: data.train)
        let validation = DataSplit(name: "validation", rows: data.validation)
        let test = DataSplit(name: "test", rows: data.test)
        let cacheStart = Date()
        // Shared with evaluate only when the frozen part holds at least one block: states that are
        // just the embeddings (nothing below block 0) cost more to store than to recompute.
        let trunkSplits = sharesTrunk && model.cacheIsExact && model.startBlock != 0 ? [train, validation, test] : []
        let cached = !trunkSplits.isEmpty ? trunkSplits : s.cacheFrozenTrunk && model.cacheIsExact ? [train, validation] : []
        var copied = 0
        if !cached.isEmpty {
            let n = cached.map(\.rows.rowCount).reduce(0, +)
            reporter.note("running the frozen layers once for \(n) rows (\(cached.map(\.name).joined(separator: " + ")))...")
            copied = try model.fillCache(cached)
            reporter.note(String(format: "frozen layers run once for %d rows in %.1fs (%d repeated rows copied from their first occurrence)",
                                 n - copied, Date().timeIntervalSince(cacheStart), copied))
        }
        let cacheSeconds = Date().timeIntervalSince(cacheStart)

        let inputsKey = "train.bin=\(data.shardHashes["train"]!) validation.bin=\(data.shardHashes["validation"]!) base=\(base.identity)"
        let stateURL = o.output.appendingPathComponent(ResumeState.fileName)
        let trainer = ClassifierTrainer(model: model, train: train, validation: validation, settings: s, inputsKey: inputsKey,
                              stateURL: stateURL, reporter: reporter)
        let state = try ResumeState.load(mode: o.resume, from: stateURL, check: { try trainer.checkCompatible($0, source: stateURL.path) },
                                         totalSteps: trainer.totalSteps, reporter: reporter)
        try FileManager.default.createDirectory(at: o.output, withIntermediateDirectories: true)
        let outcome = try trainer.run(resumeFrom: state, stopAfterSteps: o.stopAfterSteps)
        if outcome.interrupted { return ClassifierTrainResult(outcome: outcome, manifest: nil, cacheSeconds: cacheSeconds) }

        // Final outputs, each written atomically; the manifest last, so it only ever describes complete files.
        let meta: [String: String] = [
            CheckpointFormat.CallerKey.baseModel: "\(config.name) \(base.identity)",
            CheckpointFormat.CallerKey.trainable: s.trainableLayers.rawValue,
            ClassifierCheckpoint.settingsKey: JSONValue.object(s.asJSON).canonicalString,
            ClassifierCheckpoint.maxLengthKey: String(data.maxLength),
            ClassifierCheckpoint.padTokenKey: String(data.padTokenID),
            "train_shard_sha256": data.shardHashes["train"]!, "validation_shard_sha256": data.shardHashes["validation"]!,
        ]
        let modelURL = o.output.appendingPathComponent(modelFile)
        let trained = model.parameters
        let lora = try s.lora.map {
            try LoRAWeights(settings: $0, layout: LoRALayout(layout: layout, rank: $0.rank),
                            values: Array(trained[layout.totalCount...]))
        }
        try ClassifierCheckpoint.save(parameters: Array(trained[0..<layout.totalCount]), layout: layout, metadata: meta,
                                      to: modelURL, lora: lora)
        let logURL = o.output.appendingPathComponent(logFile)
        try AtomicFile.write(Data(outcome.log.map { $0.jsonLine() + "\n" }.joined().utf8), to: logURL)
        // trunk.bin: the frozen states of every row for `evaluate`; a stale one from an earlier run
        // with a frozen trunk is removed so the directory only describes this run.
        let trunkURL = o.output.appendingPathComponent(TrunkStatesFile.fileName)
        var trunkSeconds = 0.0
        if trunkSplits.isEmpty {
            if FileManager.default.fileExists(atPath: trunkURL.path) { try FileManager.default.removeItem(at: trunkURL) }
        } else {
            let start = Date()
            try FrozenTrunkArtifact.write(model: model, splits: trunkSplits, shardHashes: data.shardHashes, base: base.identity, to: trunkURL)
            trunkSeconds = Date().timeIntervalSince(start)
        }

        var inputs = try (trunkSplits.isEmpty ? ["train.bin", "validation.bin"] : ["train.bin", "validation.bin", "test.bin"]).map {
            try FileRecord.of(o.prepared.appendingPathComponent($0), as: o.prepared.appendingPathComponent($0).path)
        }
        if let f = base.file { inputs.append(try FileRecord.of(f, as: f.path)) }
        inputs.append(try FileRecord.of(o.prepared.appendingPathComponent(Manifest.fileName), as: o.prepared.appendingPathComponent(Manifest.fileName).path))
        let outputs = try ([modelFile, logFile, ResumeState.fileName] + (trunkSplits.isEmpty ? [] : [TrunkStatesFile.fileName]))
            .map { try FileRecord.of(o.output.appendingPathComponent($0), as: $0) }
        let lastEval = outcome.log.last { $0.kind == "eval" }, lastEpoch = outcome.log.last { $0.kind == "epoch" }
        var params = s.asJSON
        params["num_classes"] = .int(data.numClasses)
        params["max_length"] = .int(data.maxLength)
        params["pad_token_id"] = .int(data.padTokenID)
        params["config"] = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(config))
        func num(_ v: Double?) -> JSONValue { v.map { .double($0) } ?? .null }
        let manifest = Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "train", params: params,
                                inputs: inputs, outputs: outputs, stats: [
                                    "steps": .int(outcome.steps), "examples_seen": .int(outcome.examplesSeen),
                                    "epochs": .int(s.epochs), "batches_per_epoch": .int(trainer.batchesPerEpoch),
                                    "wall_seconds": .double(outcome.elapsedSeconds),
                                    "frozen_trunk_cached": .bool(train.isCached), "cache_seconds": .double(cacheSeconds),
                                    "trunk_file": trunkSplits.isEmpty ? .null : .string(TrunkStatesFile.fileName),
                                    "trunk_rows": .int(trunkSplits.map(\.rows.rowCount).reduce(0, +)),
                                    "trunk_write_seconds": .double(trunkSeconds),
                                    "frozen_rows_copied": .int(copied),
                                    "trainable_parameters": .int(model.trainableRange.count),
                                    "final_train_loss": num(lastEval?.trainLoss), "final_val_loss": num(lastEval?.valLoss),
                                    "final_train_accuracy": num(lastEpoch?.trainAccuracy), "final_val_accuracy": num(lastEpoch?.valAccuracy),
                                ])
        try manifest.write(into: o.output)
        return ClassifierTrainResult(outcome: outcome, manifest: manifest, cacheSeconds: cacheSeconds)
    }
}

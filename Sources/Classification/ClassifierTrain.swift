import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import Quantization
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
    /// The processes of an `mpirun -np N train` job (process 0 alone writes); one by default.
    public var parallel = DataParallel.single

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
    public static let logFile = TrainingRun.logFile

    /// What a run starts from: the shards, the layout with a head of the shards' classes, the base weights.
    struct Inputs {
        var config: GPT2Config
        var data: ClassificationDataset
        var layout: ParameterLayout
        var base: BaseWeights
        /// QLoRA: the model over the quantized base (`base` then has no parameters).
        var qloraModel: GPT2Model?
        /// The test rows are read too when a frozen trunk exists: their frozen-layer states go
        /// into trunk.bin with the others, so `evaluate` runs only the trainable top.
        var sharesTrunk: Bool
    }

    /// The frozen layers' pass: which splits it covered, what of it is kept for `evaluate`.
    struct FrozenPass {
        var trunkSplits: [DataSplit] = []
        var seconds = 0.0
        var copiedRows = 0
        /// Seconds spent writing trunk.bin right after the pass (nil: not written by this run).
        var trunkSeconds: Double?
    }

    public static func run(_ o: ClassifierTrainOptions, makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend,
                           progress: @escaping ProgressHandler = silentProgress) throws -> ClassifierTrainResult {
        let s = o.settings, parallel = o.parallel, writes = parallel.writesOutputs
        try s.validate()
        try parallel.check(batchSize: s.batchSize)
        let inputs = try loadInputs(o, progress: progress)
        let hashes = inputs.data.shardHashes
        let inputsKey = "train.bin=\(hashes["train"]!) validation.bin=\(hashes["validation"]!) base=\(inputs.base.identity)"
            + (s.quantizeBase == .none ? "" : " quantized=\(s.quantizeBase.rawValue)")
        try parallel.checkSameRun("settings=\(s.resumeKey) inputs=\(inputsKey)")
        let model = try makeModel(inputs, settings: s, makeBackend: makeBackend, progress: progress)
        let splits = ["train", "validation", "test"].map { DataSplit(name: $0, rows: inputs.data[$0]) }
        let frozen = try runFrozenLayers(model, splits: splits, inputs: inputs, settings: s, output: o.output, parallel: parallel,
                                         progress: progress)
        // Process 0 alone writes; the others compute their shares and take part in every exchange.
        let trainer = ClassifierTrainer(model: model, train: splits[0], validation: splits[1], settings: s, inputsKey: inputsKey,
                                        stateURL: writes ? o.output.appendingPathComponent(ResumeState.fileName) : nil,
                                        logURL: writes ? o.output.appendingPathComponent(logFile) : nil, progress: progress)
        trainer.parallel = parallel
        if writes {
            trainer.saveBestCheckpoint = { best in
                try saveCheckpoint(model, inputs: inputs, settings: s, to: try TrainingRun.bestModelURL(in: o.output),
                                   extra: TrainingRun.bestMetadata(best, metric: s.controls.bestMetric))
            }
        }
        let state = try TrainingRun.resumeState(in: o.output, mode: o.resume, totalSteps: trainer.totalSteps, parallel: parallel,
                                                progress: progress, check: trainer.checkCompatible)
        let outcome = try trainer.run(resumeFrom: state, stopAfterSteps: o.stopAfterSteps)
        if outcome.interrupted || !writes { return ClassifierTrainResult(outcome: outcome, manifest: nil, cacheSeconds: frozen.seconds) }

        // Final outputs, each written atomically; the manifest last, so it only ever describes complete files.
        try saveCheckpoint(model, inputs: inputs, settings: s, to: o.output.appendingPathComponent(modelFile))
        try TrainingRun.writeLog(outcome.log, into: o.output)
        try removeStaleTrunk(frozen, output: o.output)
        let manifest = try writeManifest(o, inputs: inputs, trainer: trainer, outcome: outcome, frozen: frozen,
                                         trunkSeconds: frozen.trunkSeconds ?? 0)
        return ClassifierTrainResult(outcome: outcome, manifest: manifest, cacheSeconds: frozen.seconds)
    }

    static func loadInputs(_ o: ClassifierTrainOptions, progress: ProgressHandler) throws -> Inputs {
        let s = o.settings
        let config = try o.config ?? s.base.modelConfig()
        guard config.dropRate == 0 else {
            throw PipelineError("drop_rate \(config.dropRate) is not supported by train yet (the book fine-tunes with 0.0)",
                                location: s.model, hint: "use a model config with drop_rate 0")
        }
        let sharesTrunk = s.cacheFrozenTrunk && !s.trainableLayers.trainsEmbeddings
        let data = try ClassificationDataset.load(from: o.prepared, splits: sharesTrunk ? ClassificationPreparer.splitNames : ["train", "validation"])
        if let vocab = o.vocabDirectory { try data.checkTokenizer(vocabDirectory: vocab) }
        try data.check(against: config, numClasses: o.numClasses)
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: data.numClasses))
        guard let type = s.quantizeBase.type else {
            return Inputs(config: config, data: data, layout: layout, base: try BaseWeights.load(s.base, seed: s.seed, layout: layout),
                          sharesTrunk: sharesTrunk)
        }
        // QLoRA: the same quantized-base file as `train instruct` (its layout has this head).
        let q = try QuantizedBaseArtifact.model(s.base, seed: s.seed, layout: layout, initScheme: .torch, type: type, folder: o.output,
                                                writes: o.parallel.writesOutputs)
        progress(.note(q.note))
        return Inputs(config: config, data: data, layout: layout, base: q.base, qloraModel: q.model, sharesTrunk: sharesTrunk)
    }

    /// The classifier over the base weights; with LoRA, as the book: the new head is drawn,
    /// everything is frozen, then every Linear gets an adapter. Over a quantized base the GPT-2
    /// backend holds the base and the classifier's vector starts at the head (`ClassifierModel.parameters`).
    static func makeModel(_ inputs: Inputs, settings s: ClassifierSettings,
                          makeBackend: (ParameterLayout, [Float]) throws -> ClassifierBackend,
                          progress: ProgressHandler) throws -> ClassifierModel {
        let backend: ClassifierBackend, start: Int
        var parameters: [Float]
        if let model = inputs.qloraModel {
            let qlora = try GPT2Backend(qloraModel: model)
            (backend, start) = (qlora, qlora.vectorStart)
            parameters = model.withParameters { Array($0[start...]) }
        } else {
            (backend, start) = (try makeBackend(inputs.layout, inputs.base.parameters), 0)
            parameters = inputs.base.parameters
        }
        if let lora = s.loraSettings {
            let adapters = try LoRAWeights.initial(for: inputs.layout, settings: lora, seed: s.seed)
            try backend.attachLoRA(adapters)
            parameters += adapters.values
            progress(.note("LoRA rank \(lora.rank), alpha \(lora.alpha): \(adapters.values.count) trainable parameters; the \(inputs.layout.totalCount) original parameters are frozen (no frozen-layer cache: every block changes)"
                           + (start > 0 ? "; the base is held quantized (\(s.quantizeBase.rawValue)), the head float32" : "")))
        }
        return try ClassifierModel(backend: backend, parameters: parameters, pooling: s.pooling,
                                   trainable: s.trainableLayers, trimBatches: s.trimBatches)
    }

    /// Runs the frozen layers once for the rows that reuse them. Their states are shared with
    /// evaluate (trunk.bin) only when the frozen part holds at least one block: states that are
    /// just the embeddings (nothing below block 0) cost more to store than to recompute.
    /// trunk.bin is written as soon as the pass ends, so a run that is interrupted (even by
    /// kill -9) and rerun reads the states back instead of running the pass again; a trunk.bin
    /// is only read when it belongs to these frozen weights and shards (`FrozenTrunkArtifact.load`).
    static func runFrozenLayers(_ model: ClassifierModel, splits: [DataSplit], inputs: Inputs, settings s: ClassifierSettings,
                                output: URL, parallel: DataParallel, progress: ProgressHandler) throws -> FrozenPass {
        var pass = FrozenPass()
        if inputs.sharesTrunk && model.cacheIsExact && model.startBlock != 0 { pass.trunkSplits = splits }
        let cached = !pass.trunkSplits.isEmpty ? pass.trunkSplits : s.cacheFrozenTrunk && model.cacheIsExact ? Array(splits.prefix(2)) : []
        guard !cached.isEmpty else { return pass }
        if let why = model.frozenStatesOverBudget(cached, budget: s.frozenStateBudget) {
            progress(.note("\(why): the frozen layers run for every batch instead (same numbers, slower; raise --frozen-memory-budget to cache them)"))
            return FrozenPass()
        }
        let n = cached.map(\.rows.rowCount).reduce(0, +)
        let trunkURL = output.appendingPathComponent(TrunkStatesFile.fileName)
        if !pass.trunkSplits.isEmpty, try readTrunk(model, splits: cached, inputs: inputs, from: trunkURL, parallel: parallel) {
            progress(.note("frozen-layer states of \(n) rows read from \(trunkURL.path) (an earlier run's: same frozen weights and shards)"))
            return pass
        }
        let start = Date()
        let shared = parallel.isDistributed ? " (\(parallel.size) processes share the passes)" : ""
        progress(.note("running the frozen layers once for \(n) rows (\(cached.map(\.name).joined(separator: " + ")))\(shared)..."))
        pass.copiedRows = try model.fillCache(cached, parallel: parallel, progress: progress)
        pass.seconds = Date().timeIntervalSince(start)
        progress(.note(String(format: "frozen layers run once for %d rows in %.1fs (%d repeated rows copied from their first occurrence)",
                              n - pass.copiedRows, pass.seconds, pass.copiedRows)))
        if !pass.trunkSplits.isEmpty && parallel.writesOutputs {
            pass.trunkSeconds = try writeTrunk(model, splits: pass.trunkSplits, inputs: inputs, to: trunkURL)
        }
        return pass
    }

    /// Reads an earlier run's trunk.bin when it belongs to these frozen weights and shards. In a
    /// data-parallel run process 0 reads it (only its host needs the output folder) and sends the
    /// states to the others. Returns whether the states were read.
    static func readTrunk(_ model: ClassifierModel, splits: [DataSplit], inputs: Inputs, from url: URL,
                          parallel: DataParallel) throws -> Bool {
        let read = parallel.writesOutputs
            && FrozenTrunkArtifact.load(from: url, model: model, splits: splits, shardHashes: inputs.data.shardHashes) == nil
        guard parallel.isDistributed else { return read }
        guard try parallel.collective.any(read, what: "whether trunk.bin was read") else { return false }
        for split in splits {
            var states = split.cache ?? [Float](repeating: 0, count: model.frozenStateBytes([split]) / MemoryLayout<Float>.size)
            try parallel.collective.broadcast(&states, what: "the frozen-layer states read from trunk.bin")
            split.cache = states
        }
        return true
    }

    /// model.safetensors with what inference must repeat in its metadata (see `ClassifierCheckpoint`).
    static func saveCheckpoint(_ model: ClassifierModel, inputs: Inputs, settings s: ClassifierSettings, to url: URL,
                               extra: [String: String] = [:]) throws {
        let (layout, data) = (inputs.layout, inputs.data)
        let meta: [String: String] = extra.merging([
            CheckpointFormat.CallerKey.baseModel: "\(inputs.config.name) \(inputs.base.identity)",
            CheckpointFormat.CallerKey.trainable: s.trainableLayers.rawValue,
            ClassifierCheckpoint.settingsKey: JSONValue.object(s.asJSON).canonicalString,
            ClassifierCheckpoint.maxLengthKey: String(data.maxLength),
            ClassifierCheckpoint.padTokenKey: String(data.padTokenID),
            ClassifierCheckpoint.labelNamesKey: ClassifierCheckpoint.labelNamesValue(data.labelNames),
            "train_shard_sha256": data.shardHashes["train"]!, "validation_shard_sha256": data.shardHashes["validation"]!,
        ]) { _, ours in ours }.merging(s.quantizeBase == .none ? [:] : [QuantizedBaseArtifact.checkpointKey: s.quantizeBase.rawValue]) { a, _ in a }
        let lora = try s.loraSettings.map {
            try LoRAWeights(settings: $0, layout: LoRALayout(layout: layout, rank: $0.rank), values: model.adapterValues!)
        }
        // A QLoRA checkpoint holds the dequantized base: the float32 model the adapters were trained over.
        try ClassifierCheckpoint.save(tensor: model.checkpointTensor, layout: layout, metadata: meta, to: url, lora: lora)
    }

    /// trunk.bin: the frozen states of every row for `evaluate`; a stale one from an earlier run
    /// with a frozen trunk is removed so the directory only describes this run. Returns the seconds taken.
    /// Writes the frozen-layer states of `splits` to `url`; returns the seconds it took.
    static func writeTrunk(_ model: ClassifierModel, splits: [DataSplit], inputs: Inputs, to url: URL) throws -> Double {
        let start = Date()
        try FrozenTrunkArtifact.write(model: model, splits: splits, shardHashes: inputs.data.shardHashes,
                                      base: inputs.base.identity, to: url)
        return Date().timeIntervalSince(start)
    }

    /// A trunk.bin left by an earlier run with other settings must not outlive this run's outputs.
    static func removeStaleTrunk(_ frozen: FrozenPass, output: URL) throws {
        let url = output.appendingPathComponent(TrunkStatesFile.fileName)
        if frozen.trunkSplits.isEmpty && FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
    }

    static func writeManifest(_ o: ClassifierTrainOptions, inputs: Inputs, trainer: ClassifierTrainer, outcome: TrainingOutcome,
                              frozen: FrozenPass, trunkSeconds: Double) throws -> Manifest {
        let data = inputs.data, hasTrunk = !frozen.trunkSplits.isEmpty
        let read = (hasTrunk ? ["train.bin", "validation.bin", "test.bin"] : ["train.bin", "validation.bin"])
            .map { o.prepared.appendingPathComponent($0) } + (inputs.base.file.map { [$0] } ?? [])
            + [o.prepared.appendingPathComponent(Manifest.fileName)]
        let written = TrainingRun.outputs([modelFile, logFile, ResumeState.fileName] + (hasTrunk ? [TrunkStatesFile.fileName] : [])
                                            + (o.settings.quantizeBase == .none ? [] : [QuantizedBaseArtifact.fileName]),
                                          controls: o.settings.controls, best: outcome.best)
        var params = o.settings.asJSON
        params["num_classes"] = .int(data.numClasses)
        params["label_names"] = .array(data.labelNames.map { .string($0) })
        params["max_length"] = .int(data.maxLength)
        params["pad_token_id"] = .int(data.padTokenID)
        params["config"] = try .encoding(inputs.config)
        let lastEval = outcome.log.last { $0.kind == "eval" }, lastEpoch = outcome.log.last { $0.kind == "epoch" }
        var stats = TrainingRun.commonStats(outcome, settings: o.settings.loop, batchesPerEpoch: trainer.batchesPerEpoch)
        stats.merge([
            "frozen_trunk_cached": .bool(trainer.train.isCached), "cache_seconds": .double(frozen.seconds),
            "trunk_file": hasTrunk ? .string(TrunkStatesFile.fileName) : .null,
            "trunk_rows": .int(frozen.trunkSplits.map(\.rows.rowCount).reduce(0, +)), "trunk_write_seconds": .double(trunkSeconds),
            "frozen_rows_copied": .int(frozen.copiedRows), "processes": .int(o.parallel.size), "trainable_parameters": .int(trainer.model.trainableRange.count),
            "final_train_loss": .number(lastEval?.trainLoss), "final_val_loss": .number(lastEval?.valLoss),
            "final_train_accuracy": .number(lastEpoch?.trainAccuracy), "final_val_accuracy": .number(lastEpoch?.valAccuracy),
            "quantized_base_bytes": inputs.qloraModel?.quantizedBaseWeights.map { .int($0.byteCount) } ?? .null,
        ]) { a, _ in a }
        stats.merge(trainer.stepTimes.stats) { a, _ in a }
        let manifest = Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "train", params: params,
                                inputs: try FileRecord.inputs(read), outputs: try FileRecord.outputs(written, in: o.output),
                                stats: stats)
        try manifest.write(into: o.output)
        return manifest
    }
}

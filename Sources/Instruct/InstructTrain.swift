import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights
import Quantization
import TrainingKit

/// Inputs and switches of `train instruct`.
public struct InstructTrainOptions {
    /// Output folder of `prepare instruct`.
    public var prepared: URL
    public var output: URL
    public var settings: InstructSettings
    /// Overrides `settings.model` (tests' tiny models).
    public var config: GPT2Config?
    /// Tokenizer folder; when given, a sample response to the first validation prompt is printed
    /// after each epoch, as the book's `generate_and_print_sample` does.
    public var vocabDirectory: URL?
    /// Whether to continue from `output/state`.
    public var resume = ResumeMode.never
    /// Stop like Ctrl-C after this many steps (tests).
    public var stopAfterSteps: Int?
    /// The processes of an `mpirun -np N train instruct` job (process 0 alone writes); one by default.
    public var parallel = DataParallel.single

    public init(prepared: URL, output: URL, settings: InstructSettings) {
        self.prepared = prepared
        self.output = output
        self.settings = settings
    }
}

/// What `train instruct` did, for the command to report.
public struct InstructTrainResult {
    public var outcome: TrainingOutcome
    /// nil when interrupted (only the resume state was written).
    public var manifest: Manifest?
    /// The per-epoch sample responses (empty without a tokenizer).
    public var samples: [String]
    /// Mean wall seconds of an optimizer step in this process (forward + backward + AdamW).
    public var secondsPerStep: Double
}

/// `train instruct`: the book's `train_model_simple` over instruction rows — causal-LM
/// cross-entropy with the tied output head, every parameter trained with AdamW, batches of the
/// shuffled training rows (incomplete last batch dropped), collated with the chapter's collate
/// function; train/validation losses on `eval_iter` batches every `eval_freq` steps.
public enum InstructTrainStage {
    public static let manifestFormat = "instruct-training"
    public static let manifestVersion = 1
    public static let modelFile = "model.safetensors"
    public static let logFile = TrainingRun.logFile
    /// Checkpoint metadata keys read back by `evaluate instruct`.
    public static let styleKey = "prompt_style"
    public static let settingsKey = "instruct_settings"
    public static let allowedMaxLengthKey = "allowed_max_length"
    /// QLoRA runs only: the type of the quantized base the adapters were trained over.
    public static let quantizedBaseKey = QuantizedBaseArtifact.checkpointKey

    /// What a run starts from: the prepared rows and the model over its base weights.
    struct Inputs {
        var config: GPT2Config
        var data: InstructionDataset
        var style: PromptStyle
        var train: InstructionShard
        var validation: InstructionShard
        var base: BaseWeights
        var model: GPT2Model
        /// sha256 of train.bin and validation.bin.
        var hashes: [String]
        /// The book's cut is allowed_max_length (1024 = GPT-2's context); a smaller model context cuts too.
        var cut: Int
    }

    public static func run(_ o: InstructTrainOptions, progress: @escaping ProgressHandler = silentProgress) throws -> InstructTrainResult {
        try o.settings.validate()
        let parallel = o.parallel, writes = parallel.writesOutputs
        try parallel.check(batchSize: o.settings.batchSize)
        let inputs = try loadInputs(o, progress: progress)
        let inputsKey = "train.bin=\(inputs.hashes[0]) validation.bin=\(inputs.hashes[1]) base=\(inputs.base.identity)"
            + (o.settings.quantizeBase == .none ? "" : " quantized=\(o.settings.quantizeBase.rawValue)")
        try checkParallel(parallel, config: inputs.config, key: "settings=\(o.settings.resumeKey) inputs=\(inputsKey)")
        // Process 0 alone writes; the others compute their shares and take part in every exchange.
        let trainer = InstructTrainer(model: inputs.model, train: inputs.train, validation: inputs.validation, settings: o.settings,
                                      cut: inputs.cut, inputsKey: inputsKey,
                                      stateURL: writes ? o.output.appendingPathComponent(ResumeState.fileName) : nil,
                                      logURL: writes ? o.output.appendingPathComponent(logFile) : nil, progress: progress)
        trainer.parallel = parallel
        if writes {
            trainer.saveBestCheckpoint = { best in
                try saveCheckpoint(o, inputs: inputs, to: try TrainingRun.bestModelURL(in: o.output),
                                   extra: TrainingRun.bestMetadata(best, metric: o.settings.controls.bestMetric))
            }
            trainer.sample = try sampler(o, inputs: inputs)
        }
        let state = try TrainingRun.resumeState(in: o.output, mode: o.resume, totalSteps: trainer.totalSteps, parallel: parallel,
                                                progress: progress, check: trainer.checkCompatible)
        let outcome = try trainer.run(resumeFrom: state, stopAfterSteps: o.stopAfterSteps)
        var result = InstructTrainResult(outcome: outcome, manifest: nil, samples: trainer.samples, secondsPerStep: trainer.secondsPerStep)
        if outcome.interrupted || !writes { return result }

        // Final outputs, each written atomically; the manifest last, so it only ever describes complete files.
        try saveCheckpoint(o, inputs: inputs, to: o.output.appendingPathComponent(modelFile))
        try TrainingRun.writeLog(outcome.log, into: o.output)
        result.manifest = try writeManifest(o, inputs: inputs, trainer: trainer, outcome: outcome)
        return result
    }

    /// A data-parallel run needs drop_rate 0 (each micro-batch's dropout masks are drawn for the
    /// whole batch, so a split batch would draw others) and the same run on every process.
    static func checkParallel(_ parallel: DataParallel, config: GPT2Config, key: String) throws {
        guard parallel.isDistributed else { return }
        guard config.dropRate == 0 else {
            throw PipelineError("\(parallel.size) processes need drop_rate 0 (dropout masks are drawn per batch, so a batch split across processes would draw others); the model has \(config.dropRate)",
                                location: "train.processes", hint: "use a config with drop_rate 0, or one process")
        }
        try parallel.checkSameRun(key)
    }

    static func loadInputs(_ o: InstructTrainOptions, progress: ProgressHandler) throws -> Inputs {
        let s = o.settings
        let config = try o.config ?? s.base.modelConfig()
        let data = try InstructionDataset(directory: o.prepared)
        let train = try data.shard(.train), validation = try data.shard(.validation)
        try checkTokens(train, "train", config: config, dir: o.prepared)
        try checkTokens(validation, "validation", config: config, dir: o.prepared)
        let layout = ParameterLayout(config: config, head: .languageModel)
        if s.gradientCheckpointing && config.dropRate > 0 {
            throw PipelineError("gradient_checkpointing needs drop_rate 0 (recomputed dropout masks would differ), the model has \(config.dropRate)",
                                location: "train.gradient_checkpointing", hint: "use a config with drop_rate 0, or gradient_checkpointing false")
        }
        let (base, model) = try loadBase(o, layout: layout, progress: progress)
        model.recomputesActivations = s.gradientCheckpointing
        if let lora = s.loraSettings {
            try model.attachLoRA(LoRAWeights.initial(for: layout, settings: lora, seed: s.seed))
            progress(.note("LoRA rank \(lora.rank), alpha \(lora.alpha): \(model.loraAdapters!.count) trainable parameters; the \(layout.totalCount) original parameters are frozen"))
        }
        let hashes = try ["train.bin", "validation.bin"].map { try FileHash.sha256(of: o.prepared.appendingPathComponent($0)) }
        return Inputs(config: config, data: data, style: data.style ?? .alpaca, train: train, validation: validation, base: base,
                      model: model, hashes: hashes, cut: min(s.allowedMaxLength, config.contextLength))
    }

    /// The base weights and the model over them (the parameters are not kept twice). With
    /// `quantize_base`, the base comes from `<out>/quantized-base.bin` when it holds these base
    /// weights in that type; otherwise the float32 base is loaded, quantized and written there.
    static func loadBase(_ o: InstructTrainOptions, layout: ParameterLayout, progress: ProgressHandler) throws -> (BaseWeights, GPT2Model) {
        let s = o.settings
        guard let type = s.quantizeBase.type else {
            return try BaseWeights.model(s.base, seed: s.seed, layout: layout, initScheme: s.initScheme)
        }
        let q = try QuantizedBaseArtifact.model(s.base, seed: s.seed, layout: layout, initScheme: s.initScheme, type: type,
                                                folder: o.output, writes: o.parallel.writesOutputs)
        progress(.note(q.note))
        return (q.base, q.model)
    }

    /// With a tokenizer, the book's `generate_and_print_sample` after each epoch: the model's
    /// greedy answer (50 tokens) to the first validation prompt.
    static func sampler(_ o: InstructTrainOptions, inputs: Inputs) throws -> (() throws -> String?)? {
        guard let vocab = o.vocabDirectory, let entry = try inputs.data.entries(.validation).first else { return nil }
        let tok = try GPT2BPETokenizer(directory: vocab)
        let (model, context) = (inputs.model, inputs.config.contextLength)
        let ids = tok.encodeOrdinary(formatPrompt(entry, style: inputs.style)).map(Int32.init)
        return { [weak model] in
            guard let model else { return nil }
            let out = try model.generate(prompts: [Array(ids.suffix(context))], options: GenerationOptions(maxNewTokens: 50))
            return try tok.decode((ids + out[0]).map(Int.init)).replacingOccurrences(of: "\n", with: " ")
        }
    }

    /// model.safetensors with what `evaluate instruct` reads back in its metadata.
    static func saveCheckpoint(_ o: InstructTrainOptions, inputs: Inputs, to url: URL, extra: [String: String] = [:]) throws {
        let s = o.settings, model = inputs.model
        let meta: [String: String] = extra.merging([
            CheckpointFormat.CallerKey.baseModel: "\(inputs.config.name) \(inputs.base.identity)",
            CheckpointFormat.CallerKey.trainable: s.trainableLayers.rawValue,
            settingsKey: JSONValue.object(s.asJSON).canonicalString,
            styleKey: inputs.style.rawValue,
            allowedMaxLengthKey: String(inputs.cut),
            "train_shard_sha256": inputs.hashes[0], "validation_shard_sha256": inputs.hashes[1],
        ]) { _, ours in ours }.merging(s.quantizeBase == .none ? [:] : [quantizedBaseKey: s.quantizeBase.rawValue]) { a, _ in a }
        try GPT2Weights.saveCheckpoint(tensor: model.tensorWithDequantizedBase, layout: model.layout, metadata: meta, to: url,
                                       lora: model.loraAdapters?.weights)
    }

    static func writeManifest(_ o: InstructTrainOptions, inputs: Inputs, trainer: InstructTrainer,
                              outcome: TrainingOutcome) throws -> Manifest {
        let read = ["train.bin", "validation.bin", Manifest.fileName].map { o.prepared.appendingPathComponent($0) }
            + (inputs.base.file.map { [$0] } ?? [])
        var params = o.settings.asJSON
        params["prompt_style"] = .string(inputs.style.rawValue)
        params["config"] = try .encoding(inputs.config)
        let evals = outcome.log.filter { $0.kind == "eval" }
        var stats = TrainingRun.commonStats(outcome, settings: o.settings.loop, batchesPerEpoch: trainer.batchesPerEpoch)
        stats.merge([
            "tokens_seen_this_process": .int(trainer.tokensSeen), "processes": .int(o.parallel.size),
            "trainable_parameters": .int(inputs.model.loraAdapters?.count ?? inputs.model.layout.totalCount),
            "first_train_loss": .number(evals.first?.trainLoss), "first_val_loss": .number(evals.first?.valLoss),
            "final_train_loss": .number(evals.last?.trainLoss), "final_val_loss": .number(evals.last?.valLoss),
            "epoch_samples": .array(trainer.samples.map { .string($0) }),
            "quantized_base_bytes": inputs.model.quantizedBaseWeights.map { .int($0.byteCount) } ?? .null,
        ]) { a, _ in a }
        // Per-step times are null when this process ran no step (a --resume that only writes the outputs).
        stats.merge(trainer.stepStats) { a, _ in a }
        let manifest = Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "train instruct", params: params,
                                inputs: try FileRecord.inputs(read),
                                outputs: try FileRecord.outputs(TrainingRun.outputs([modelFile, logFile, ResumeState.fileName]
                                                                                   + (o.settings.quantizeBase == .none ? [] : [QuantizedBaseArtifact.fileName]),
                                                                                   controls: o.settings.controls, best: outcome.best),
                                                               in: o.output), stats: stats)
        try manifest.write(into: o.output)
        return manifest
    }

    /// Token ids must exist in the model's vocabulary (a tiny test model, or a shard from another tokenizer).
    static func checkTokens(_ shard: InstructionShard, _ name: String, config: GPT2Config, dir: URL) throws {
        // The collate function pads with <|endoftext|> (50256), so that id must exist too.
        let top = max(Int(shard.tokenStorage.max() ?? 0), GPT2BPETokenizer.endOfTextID)
        guard top >= config.vocabSize else { return }
        throw PipelineError("\(name).bin (with the 50256 padding) needs token id \(top) but model \(config.name) has only \(config.vocabSize) tokens",
                            location: dir.appendingPathComponent("\(name).bin").path, hint: "use a GPT-2 model (vocab_size 50257)")
    }
}

/// The training loop of `train instruct` (the book's `train_model_simple`), resumable through
/// `ResumeState` exactly like the classifier's `ClassifierTrainer`: the weights, both AdamW moments, the
/// step, the epoch's row order and the random generator.
public final class InstructTrainer {
    public let model: GPT2Model
    public let train: InstructionShard
    public let validation: InstructionShard
    public let settings: InstructSettings
    /// Columns a batch is cut to (the collate function's allowed_max_length).
    public let cut: Int
    public let inputsKey: String
    public let stateURL: URL?
    /// log.jsonl, written as the run goes (nil: the log stays in memory).
    public let logURL: URL?
    public let progress: ProgressHandler
    let trainable: TrainableSet
    /// Writes the best checkpoint (`--save-best`), given the evaluation that made it the best.
    var saveBestCheckpoint: ((BestTracker) throws -> Void)?
    /// Called after each epoch; returns a sample text to print (nil: none).
    var sample: (() throws -> String?)?
    public private(set) var samples: [String] = []
    public private(set) var tokensSeen = 0
    /// The processes sharing each batch (`mpirun -np N train instruct`); one process by default.
    public var parallel = DataParallel.single
    private var stepTimes = StepTimes()

    public init(model: GPT2Model, train: InstructionShard, validation: InstructionShard, settings: InstructSettings, cut: Int,
                inputsKey: String, stateURL: URL?, logURL: URL? = nil, progress: @escaping ProgressHandler = silentProgress) {
        self.model = model
        self.train = train
        self.validation = validation
        self.settings = settings
        self.cut = cut
        self.inputsKey = inputsKey
        self.stateURL = stateURL
        self.logURL = logURL
        self.progress = progress
        trainable = model.loraAdapters == nil ? TrainableSet.all(model.layout) : .loraAdapters
    }

    /// What the optimizer trains, as a range of the vector (base parameters, then adapters) that
    /// a resume state stores: everything, or only the LoRA adapters.
    var trainedRange: Range<Int> {
        let total = model.layout.totalCount
        return model.loraAdapters.map { total..<(total + $0.count) } ?? 0..<total
    }

    public var batchesPerEpoch: Int { train.rowCount / settings.batchSize }
    /// Optimizer steps of the whole run (the epochs', or max_steps when smaller).
    public var totalSteps: Int {
        EpochLoop.totalSteps(rowCount: train.rowCount, settings: settings.loop)
    }
    /// Optimizer steps this process ran (0 for a --resume that only writes the outputs).
    public var stepsThisProcess: Int { stepTimes.count }
    public var secondsPerStep: Double { stepTimes.mean }
    /// Median wall seconds of the optimizer steps run in this process (0 before any).
    public var medianSecondsPerStep: Double { stepTimes.median }
    /// The step-time and peak-memory stats of the manifest.
    var stepStats: [String: JSONValue] { stepTimes.stats }

    func collate(_ shard: InstructionShard, _ rows: [Int]) -> InstructionBatch {
        collateInstructionBatch(shard, indices: rows, allowedMaxLength: cut, maskPrompt: settings.maskInstructions)
    }

    /// The book's `calc_loss_loader`: the mean of the batch-mean losses (the batches dealt to
    /// the processes of a data-parallel run and their sums added up).
    public func meanLoss(_ batches: [[Int]], of shard: InstructionShard) throws -> Double {
        guard !batches.isEmpty else { return .nan }
        let total = try parallel.sumOverBatches(batches) { mine in
            var sum = 0.0
            for rows in mine {
                let b = collate(shard, rows)
                sum += Double(try model.loss(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen,
                                             objective: .languageModel(targets: b.targets)))
            }
            return [sum]
        }
        return total[0] / Double(batches.count)
    }

    public func checkCompatible(_ state: ResumeState, source: String) throws {
        try state.checkCompatible(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: trainedRange, source: source)
    }

    /// One optimizer step: the micro-batches' gradients accumulated, each weighted by its share of
    /// the step's target tokens (so the step equals one batch of all of them), measured and clipped
    /// when the plan says so, then AdamW at the plan's learning rate.
    func step(_ plan: StepPlan, optimizer: AdamW, epoch: Int) throws -> StepResult {
        try stepTimes.measure { try timedStep(plan, optimizer: optimizer, epoch: epoch) }
    }

    private func timedStep(_ plan: StepPlan, optimizer: AdamW, epoch: Int) throws -> StepResult {
        model.zeroGradients()
        var tokens = 0
        let part = try parallel.accumulate(plan, prepare: { self.collate(self.train, $0) }, items: { $0.countedTargets() }) { call, b, weight in
            tokens += b.inputs.count
            do {
                return try model.forwardBackward(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen,
                                                 objective: .languageModel(targets: b.targets), trainable: trainable,
                                                 dropoutSeed: settings.seed &+ UInt64(plan.index * plan.microBatches.count + call),
                                                 gradientScale: weight)
            } catch let e as TrainingError {
                throw PipelineError("step \(plan.index + 1) (epoch \(epoch + 1)): \(e.message)", location: "train.lr",
                                    hint: "no model was written for this run (log.jsonl has its records so far); the last saved state (if any) is still in \(stateURL?.path ?? "the output folder")")
            }
        }
        if parallel.isDistributed { try model.withTrainableGradients(trainable) { try parallel.sumGradients($0) } }
        let loss = try parallel.sumLoss(part)
        let norm = plan.measuresGradNorm ? try model.clipGradients(trainable: trainable, maxNorm: plan.maxGradNorm) : nil
        optimizer.learningRate = plan.learningRate
        try optimizer.update(model, trainable: trainable)
        tokensSeen += tokens
        return StepResult(loss: loss, gradNorm: norm)
    }

    public func run(resumeFrom state: ResumeState? = nil, stopAfterSteps: Int? = nil) throws -> TrainingOutcome {
        let loop = try EpochLoop(rowCount: train.rowCount, settings: settings.loop, progress: progress)
        let optimizer = AdamW(parameterCount: trainedRange.count, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        if let s = state {
            try checkCompatible(s, source: stateURL?.path ?? "state")
            if let lora = model.loraAdapters { try lora.setValues(s.parameters) } else { try model.setParameters(s.parameters) }
            try optimizer.restore(step: s.meta.optimizerStep, firstMoment: s.m, secondMoment: s.v)
            loop.restore(s.meta)
        }
        loop.parallel = parallel
        loop.logFile = logURL.map(TrainingLogFile.init)
        loop.saveBest = { [unowned loop] in try self.saveBestCheckpoint?(loop.best) }
        let bs = settings.batchSize
        let valBatches = (0..<((validation.rowCount + bs - 1) / bs)).prefix(settings.evalIter).map {
            Array(($0 * bs)..<min(($0 + 1) * bs, validation.rowCount))
        }
        return try loop.run(stopAfterSteps: stopAfterSteps, train: { plan in
            try step(plan, optimizer: optimizer, epoch: loop.epoch)
        }, losses: { trainBatches in
            let t = try meanLoss(trainBatches, of: train), v = try meanLoss(valBatches, of: validation)
            guard t.isFinite, v.isFinite else {
                throw PipelineError("step \(loop.step): evaluation loss is not finite (train \(t), validation \(v)); training diverged",
                                    location: "train.lr", hint: "lower the learning rate")
            }
            return (t, v)
        }, endOfEpoch: {
            if let text = try sample?() {
                samples.append(text)
                progress(.note("epoch \(loop.epoch + 1) sample: \(text)"))
            }
        }, save: {
            guard let url = stateURL else { return }
            let trained = model.loraAdapters?.values ?? model.parameters
            try ResumeState(meta: loop.meta(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: trainedRange),
                            parameters: trained, m: optimizer.firstMoment, v: optimizer.secondMoment).write(to: url)
        })
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights
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
    public static let logFile = "log.jsonl"
    /// Checkpoint metadata keys read back by `evaluate instruct`.
    public static let styleKey = "prompt_style"
    public static let settingsKey = "instruct_settings"
    public static let allowedMaxLengthKey = "allowed_max_length"

    public static func run(_ o: InstructTrainOptions, progress: @escaping ProgressHandler = silentProgress) throws -> InstructTrainResult {
        let s = o.settings
        try s.validate()
        let config = try o.config ?? s.modelConfig()
        let data = try InstructionDataset(directory: o.prepared)
        let style = data.style ?? .alpaca
        let train = try data.shard(.train), validation = try data.shard(.validation)
        try checkTokens(train, "train", config: config, dir: o.prepared)
        try checkTokens(validation, "validation", config: config, dir: o.prepared)
        let layout = ParameterLayout(config: config, head: .languageModel)
        let base = try BaseWeights.load(s, layout: layout, initScheme: s.initScheme)
        let model = try GPT2Model(layout: layout, params: base.parameters)
        if let lora = s.loraSettings {
            try model.attachLoRA(LoRAWeights.initial(for: layout, settings: lora, seed: s.seed))
            progress(.note("LoRA rank \(lora.rank), alpha \(lora.alpha): \(model.loraAdapters!.count) trainable parameters; the \(layout.totalCount) original parameters are frozen"))
        }
        let tokenizer = try o.vocabDirectory.map { try GPT2BPETokenizer(directory: $0) }
        let sampleEntry = try tokenizer == nil ? nil : data.entries(.validation).first

        let hashes = try ["train.bin", "validation.bin"].map { try FileHash.sha256(of: o.prepared.appendingPathComponent($0)) }
        let inputsKey = "train.bin=\(hashes[0]) validation.bin=\(hashes[1]) base=\(base.identity)"
        let stateURL = o.output.appendingPathComponent(ResumeState.fileName)
        try FileManager.default.createDirectory(at: o.output, withIntermediateDirectories: true)
        // The book's cut is allowed_max_length (1024 = GPT-2's context); a smaller model context cuts too.
        let cut = min(s.allowedMaxLength, config.contextLength)
        let trainer = InstructTrainer(model: model, train: train, validation: validation, settings: s, cut: cut,
                                      inputsKey: inputsKey, stateURL: stateURL, progress: progress)
        let state = try ResumeState.load(mode: o.resume, from: stateURL, check: { try trainer.checkCompatible($0, source: stateURL.path) },
                                         totalSteps: trainer.totalSteps, progress: progress)
        trainer.sample = { [weak model] in
            guard let model, let tok = tokenizer, let entry = sampleEntry else { return nil }
            let prompt = formatPrompt(entry, style: style)
            let ids = tok.encodeOrdinary(prompt).map(Int32.init)
            let out = try model.generate(prompts: [Array(ids.suffix(config.contextLength))], options: GenerationOptions(maxNewTokens: 50))
            return try tok.decode((ids + out[0]).map(Int.init)).replacingOccurrences(of: "\n", with: " ")
        }
        let outcome = try trainer.run(resumeFrom: state, stopAfterSteps: o.stopAfterSteps)
        if outcome.interrupted {
            return InstructTrainResult(outcome: outcome, manifest: nil, samples: trainer.samples, secondsPerStep: trainer.secondsPerStep)
        }

        // Final outputs, each written atomically; the manifest last, so it only ever describes complete files.
        let meta: [String: String] = [
            CheckpointFormat.CallerKey.baseModel: "\(config.name) \(base.identity)",
            CheckpointFormat.CallerKey.trainable: s.lora ? "lora" : "all",
            settingsKey: JSONValue.object(s.asJSON).canonicalString,
            styleKey: style.rawValue,
            allowedMaxLengthKey: String(cut),
            "train_shard_sha256": hashes[0], "validation_shard_sha256": hashes[1],
        ]
        let modelURL = o.output.appendingPathComponent(modelFile)
        try saveCheckpoint(params: model.parameters, layout: layout, metadata: meta, to: modelURL, lora: model.loraAdapters?.weights)
        let logURL = o.output.appendingPathComponent(logFile)
        try AtomicFile.write(Data(outcome.log.map { $0.jsonLine() + "\n" }.joined().utf8), to: logURL)

        var inputs = try ["train.bin", "validation.bin", Manifest.fileName].map {
            try FileRecord.of(o.prepared.appendingPathComponent($0), as: o.prepared.appendingPathComponent($0).path)
        }
        if let f = base.file { inputs.append(try FileRecord.of(f, as: f.path)) }
        let outputs = try [modelFile, logFile, ResumeState.fileName].map { try FileRecord.of(o.output.appendingPathComponent($0), as: $0) }
        let evals = outcome.log.filter { $0.kind == "eval" }
        var params = s.asJSON
        params["prompt_style"] = .string(style.rawValue)
        params["config"] = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(config))
        func num(_ v: Double?) -> JSONValue { v.map { .double($0) } ?? .null }
        let manifest = Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "train instruct", params: params,
                                inputs: inputs, outputs: outputs, stats: [
                                    "steps": .int(outcome.steps), "examples_seen": .int(outcome.examplesSeen),
                                    "tokens_seen_this_process": .int(trainer.tokensSeen),
                                    "epochs": .int(s.epochs), "batches_per_epoch": .int(trainer.batchesPerEpoch),
                                    "wall_seconds": .double(outcome.elapsedSeconds),
                                    // null when this process ran no step (a --resume that only writes the outputs).
                                    "seconds_per_step_this_process": trainer.stepsThisProcess == 0 ? .null : .double(trainer.secondsPerStep),
                                    "median_seconds_per_step_this_process": trainer.stepsThisProcess == 0 ? .null : .double(trainer.medianSecondsPerStep),
                                    "trainable_parameters": .int(model.loraAdapters?.count ?? layout.totalCount),
                                    "first_train_loss": num(evals.first?.trainLoss), "first_val_loss": num(evals.first?.valLoss),
                                    "final_train_loss": num(evals.last?.trainLoss), "final_val_loss": num(evals.last?.valLoss),
                                    "epoch_samples": .array(trainer.samples.map { .string($0) }),
                                ])
        try manifest.write(into: o.output)
        return InstructTrainResult(outcome: outcome, manifest: manifest, samples: trainer.samples, secondsPerStep: trainer.secondsPerStep)
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
    public let progress: ProgressHandler
    let trainable: TrainableSet
    /// Called after each epoch; returns a sample text to print (nil: none).
    var sample: (() throws -> String?)?
    public private(set) var samples: [String] = []
    public private(set) var tokensSeen = 0
    private var stepSeconds: [Double] = []

    public init(model: GPT2Model, train: InstructionShard, validation: InstructionShard, settings: InstructSettings, cut: Int,
                inputsKey: String, stateURL: URL?, progress: @escaping ProgressHandler = silentProgress) {
        self.model = model
        self.train = train
        self.validation = validation
        self.settings = settings
        self.cut = cut
        self.inputsKey = inputsKey
        self.stateURL = stateURL
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
    public var stepsThisProcess: Int { stepSeconds.count }
    public var secondsPerStep: Double { stepSeconds.isEmpty ? 0 : stepSeconds.reduce(0, +) / Double(stepSeconds.count) }
    /// Median wall seconds of the optimizer steps run in this process (0 before any).
    public var medianSecondsPerStep: Double {
        let s = stepSeconds.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func collate(_ shard: InstructionShard, _ rows: [Int]) -> InstructionBatch {
        collateInstructionBatch(shard, indices: rows, allowedMaxLength: cut, maskPrompt: settings.maskInstructions)
    }

    /// The book's `calc_loss_loader`: the mean of the batch-mean losses.
    public func meanLoss(_ batches: [[Int]], of shard: InstructionShard) throws -> Double {
        guard !batches.isEmpty else { return .nan }
        var total = 0.0
        for rows in batches {
            let b = collate(shard, rows)
            total += Double(try model.loss(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen,
                                            objective: .languageModel(targets: b.targets)))
        }
        return total / Double(batches.count)
    }

    public func checkCompatible(_ state: ResumeState, source: String) throws {
        try state.checkCompatible(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: trainedRange, source: source)
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
        let bs = settings.batchSize
        let valBatches = (0..<((validation.rowCount + bs - 1) / bs)).prefix(settings.evalIter).map {
            Array(($0 * bs)..<min(($0 + 1) * bs, validation.rowCount))
        }
        return try loop.run(stopAfterSteps: stopAfterSteps, train: { rows in
            let t0 = Date()
            let b = collate(train, rows)
            model.zeroGradients()
            let loss: Float
            do {
                loss = try model.forwardBackward(tokens: b.inputs, batch: b.batchSize, seqLen: b.seqLen,
                                                 objective: .languageModel(targets: b.targets), trainable: trainable,
                                                 dropoutSeed: settings.seed &+ UInt64(optimizer.step))
            } catch let e as TrainingError {
                throw PipelineError("step \(optimizer.step + 1) (epoch \(loop.epoch + 1)): \(e.message)", location: "train.lr",
                                    hint: "nothing was written for this run; the last saved state (if any) is still in \(stateURL?.path ?? "the output folder")")
            }
            try optimizer.update(model, trainable: trainable)
            stepSeconds.append(Date().timeIntervalSince(t0))
            tokensSeen += b.inputs.count
            return loss
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

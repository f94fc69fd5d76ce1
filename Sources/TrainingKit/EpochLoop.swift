import ArtifactKit
import Foundation

/// What `EpochLoop.run` hands the trainer for one optimizer step.
public struct StepPlan {
    /// 0-based optimizer step: the position in the learning-rate schedule.
    public let index: Int
    /// `grad_accum` micro-batches of `batch_size` training rows, together one optimizer step.
    public let microBatches: [[Int]]
    /// The schedule's rate for this step: set it on the optimizer before the update.
    public let learningRate: Float
    /// Clip the global gradient norm to this before the update (nil: no clipping).
    public let maxGradNorm: Float?
    /// Whether the step must report its gradient norm (it is logged, or clipping measures it anyway).
    public let measuresGradNorm: Bool

    public init(index: Int, microBatches: [[Int]], learningRate: Float, maxGradNorm: Float?, measuresGradNorm: Bool) {
        self.index = index
        self.microBatches = microBatches
        self.learningRate = learningRate
        self.maxGradNorm = maxGradNorm
        self.measuresGradNorm = measuresGradNorm
    }

    /// Runs `body(i, rows, weight)` on each micro-batch and returns the step's loss; `body` adds
    /// d(weight x its mean loss)/d(parameters) to the gradients (replacing them for i = 0).
    ///
    /// One batch of all N micro-batches has the mean loss L = sum_i (n_i / n) L_i, where L_i is
    /// micro-batch i's mean over its n_i items (rows, or target tokens) and n = sum_i n_i; so
    /// dL = sum_i (n_i / n) dL_i, and each micro-batch's gradient goes in with weight
    /// w_i = n_i / n. For micro-batches of equal size (`sizes` nil: the classifier's rows) that is
    /// 1/N, transformers' `loss / gradient_accumulation_steps`; with token counts it is what
    /// transformers does with `num_items_in_batch`. One micro-batch: weight 1, the step of old.
    public func accumulate(sizes: [Int]? = nil, _ body: (_ index: Int, _ rows: [Int], _ weight: Float) throws -> Float) rethrows -> Float {
        guard microBatches.count > 1 else { return try body(0, microBatches[0], 1) }
        let weights = Self.weights(sizes: sizes, count: microBatches.count)
        var loss = 0.0
        for (i, rows) in microBatches.enumerated() { loss += weights[i] * Double(try body(i, rows, Float(weights[i]))) }
        return Float(loss)
    }

    /// n_i / n, or 1/N without sizes (or when every size is 0).
    static func weights(sizes: [Int]?, count: Int) -> [Double] {
        let total = sizes?.reduce(0, +) ?? 0
        guard let sizes, total > 0 else { return [Double](repeating: 1 / Double(count), count: count) }
        return sizes.map { Double($0) / Double(total) }
    }
}

/// What an optimizer step reports back: its loss and, when measured, the gradient norm before clipping.
public struct StepResult {
    public var loss: Float
    public var gradNorm: Float?

    public init(loss: Float, gradNorm: Float?) {
        self.loss = loss
        self.gradNorm = gradNorm
    }
}

/// The epoch and batch bookkeeping shared by the book's two training loops, the classifier's
/// `train_classifier_simple` (`ClassifierTrainer`) and chapter 7's `train_model_simple` (`InstructTrainer`):
/// shuffled epochs of full batches (the incomplete last batch dropped), one optimizer step per
/// `grad_accum` batches, losses every `evalFreq` steps (or at each epoch's end) on `evalIter`
/// batches of a fresh shuffle of the training rows, something at the end of each epoch, a
/// resumable state every `saveEvery` steps, and a clean stop on Ctrl-C, after `stopAfterSteps`,
/// or after `early_stopping_patience` evaluations without improvement.
///
/// Every pass over the training rows draws a new order from the seeded generator, as a shuffling
/// DataLoader does, so a run is a pure function of its settings; the resume state stores the
/// generator, the epoch, the batch, that epoch's order and the best evaluation, so a resumed run
/// is bit-identical. The caller owns the model and the optimizer and does the work in the closures of `run`.
///
/// Steps: an epoch has `batchesPerEpoch` = rows / batch_size full batches and `stepsPerEpoch` =
/// batchesPerEpoch / grad_accum optimizer steps; the batches left over (fewer than grad_accum) are
/// dropped like the incomplete batch, so grad_accum N with batch_size B takes exactly the steps and
/// rows of batch_size N x B. The run has `totalSteps` = epochs x stepsPerEpoch optimizer steps, or
/// max_steps when smaller: the length the learning-rate schedule spans.
public final class EpochLoop {
    public let rowCount: Int
    public let batchSize: Int
    public let epochs: Int
    public let evalFreq: Int
    public let evalIter: Int
    public let saveEvery: Int
    public let controls: TrainingControls
    /// Optimizer steps of the whole run (the epochs', or fewer for a shortened run).
    public let totalSteps: Int
    public let schedule: LRSchedule
    public let progress: ProgressHandler
    /// log.jsonl, appended to as records are made (nil: the log is only kept in memory).
    public var logFile: TrainingLogFile?
    /// Writes the best checkpoint; called when the tracked metric improves and save_best is on.
    public var saveBest: () throws -> Void = {}
    /// The processes of a data-parallel run: a Ctrl-C on any of them stops all after the same step.
    public var parallel = DataParallel.single

    public private(set) var generator: SeededGenerator
    public private(set) var epoch = 0
    /// The next micro-batch of the epoch's order.
    public private(set) var nextBatch = 0
    public private(set) var permutation: [Int] = []
    public private(set) var examplesSeen = 0
    /// Optimizer steps taken so far.
    public private(set) var step = 0
    public private(set) var log: [LogRecord] = []
    public private(set) var best = BestTracker()
    /// The last step's gradient norm, when it was measured.
    private var lastGradNorm: Double?
    private var elapsedBefore = 0.0
    private var clock = Date()

    public init(rowCount: Int, settings s: LoopSettings, progress: @escaping ProgressHandler) throws {
        guard rowCount / s.batchSize >= 1 else {
            throw PipelineError("the training set has \(rowCount) rows, fewer than one batch of \(s.batchSize)",
                                location: "train.batch_size", hint: "use a smaller batch_size")
        }
        let n = s.controls.gradAccum
        guard rowCount / s.batchSize >= n else {
            throw PipelineError("grad_accum \(n) needs \(n) batches of \(s.batchSize) per epoch; the training set has \(rowCount / s.batchSize)",
                                location: "train.grad_accum", hint: "use a smaller grad_accum or batch_size")
        }
        self.rowCount = rowCount
        batchSize = s.batchSize
        epochs = s.epochs
        evalFreq = s.evalFreq
        evalIter = s.evalIter
        saveEvery = s.saveEvery
        controls = s.controls
        totalSteps = Self.totalSteps(rowCount: rowCount, settings: s)
        schedule = LRSchedule(s.controls, learningRate: s.learningRate, totalSteps: totalSteps)
        self.progress = progress
        generator = SeededGenerator(seed: s.seed ^ 0x5EED_7EA1)
    }

    /// Full batches of `batchSize` rows in an epoch's order.
    public var batchesPerEpoch: Int { rowCount / batchSize }
    public var gradAccum: Int { controls.gradAccum }
    /// Optimizer steps per epoch.
    public var stepsPerEpoch: Int { batchesPerEpoch / gradAccum }
    /// The batches an epoch trains on (leftovers short of a whole step are dropped).
    var usedBatchesPerEpoch: Int { stepsPerEpoch * gradAccum }

    /// Optimizer steps of a run: every step of every epoch, or `maxSteps` when fewer.
    public static func totalSteps(rowCount: Int, settings s: LoopSettings) -> Int {
        let epochSteps = s.epochs * (rowCount / s.batchSize / s.controls.gradAccum)
        return s.maxSteps.map { min($0, epochSteps) } ?? epochSteps
    }

    /// Continues from a resume state's position (its weights and moments are the caller's).
    public func restore(_ meta: ResumeState.Meta) {
        generator = meta.generator
        epoch = meta.epoch
        nextBatch = meta.nextBatch
        permutation = meta.permutation
        examplesSeen = meta.examplesSeen
        step = meta.optimizerStep
        elapsedBefore = meta.elapsedSeconds
        log = meta.log
        best = meta.best ?? BestTracker()
        lastGradNorm = meta.lastGradNorm
    }

    /// The position to store in a resume state.
    public func meta(settingsKey: String, inputsKey: String, trained: Range<Int>) -> ResumeState.Meta {
        ResumeState.Meta(settingsKey: settingsKey, inputsKey: inputsKey, trainableLower: trained.lowerBound,
                         trainableUpper: trained.upperBound, optimizerStep: step, epoch: epoch, nextBatch: nextBatch,
                         permutation: permutation, generator: generator, examplesSeen: examplesSeen,
                         elapsedSeconds: elapsed, log: log, best: best, lastGradNorm: lastGradNorm)
    }

    /// Wall seconds of the run, earlier processes of a resumed run included.
    public var elapsed: Double { elapsedBefore + Date().timeIntervalSince(clock) }

    /// The training batches of a pass in `order`: full batches only.
    public func trainingBatches(_ order: [Int]) -> [[Int]] {
        (0..<batchesPerEpoch).map { Array(order[($0 * batchSize)..<(($0 + 1) * batchSize)]) }
    }

    /// The first `evalIter` batches of a fresh shuffle of the training rows (the book's
    /// evaluation passes draw from the shuffling training loader too).
    public func drawEvaluationBatches() -> [[Int]] {
        Array(trainingBatches(generator.permutation(rowCount)).prefix(evalIter))
    }

    /// Adds a record to the log (and to log.jsonl) and reports it.
    public func record(_ r: LogRecord) throws {
        log.append(r)
        try logFile?.append(r)
        progress(.logged(r))
    }

    /// Runs (or continues) the loop.
    /// - `train`: one optimizer step on the plan's micro-batches; returns its loss and gradient norm.
    /// - `losses`: the mean training and validation losses, given the training batches to use.
    /// - `endOfEpoch`: after an epoch's last step (may draw batches, `record` and `observe`).
    /// - `save`: write the resume state (`meta(...)` gives the position).
    public func run(stopAfterSteps: Int?, train: (StepPlan) throws -> StepResult,
                    losses: ([[Int]]) throws -> (train: Double, validation: Double),
                    endOfEpoch: () throws -> Void, save: () throws -> Void) throws -> TrainingOutcome {
        clock = Date()
        try logFile?.start(with: log)
        defer { try? logFile?.close() }
        progress(.started(totalSteps: totalSteps, doneSteps: step))
        while true {
            // An epoch's end comes first: a state saved after its last step resumes here.
            if nextBatch == usedBatchesPerEpoch { try finishEpoch(losses: losses, endOfEpoch: endOfEpoch) }
            guard epoch < epochs && step < totalSteps && !best.stoppedEarly else { break }
            if nextBatch == 0 { permutation = generator.permutation(rowCount) }
            let batches = trainingBatches(permutation)
            while nextBatch < usedBatchesPerEpoch && step < totalSteps && !best.stoppedEarly {
                try runStep(Array(batches[nextBatch..<(nextBatch + gradAccum)]), train: train, losses: losses)
                let stopNow = try parallel.anyInterrupted() || stopAfterSteps == step
                if stopNow || (saveEvery > 0 && step % saveEvery == 0) { try save() }
                if stopNow { return outcome(interrupted: true) }
            }
        }
        if best.stoppedEarly && log.last?.kind != "early_stop" { try recordEarlyStop() }
        try save()
        return outcome(interrupted: false)
    }

    /// One optimizer step at the schedule's rate, then the losses when they are due.
    private func runStep(_ microBatches: [[Int]], train: (StepPlan) throws -> StepResult,
                         losses: ([[Int]]) throws -> (train: Double, validation: Double)) throws {
        let lr = schedule.learningRate(at: step)
        let evaluates = controls.evalStrategy == .steps ? step % evalFreq == 0 : nextBatch + gradAccum == usedBatchesPerEpoch
        let clip: Float? = controls.maxGradNorm > 0 ? Float(controls.maxGradNorm) : nil
        let result = try train(StepPlan(index: step, microBatches: microBatches, learningRate: lr, maxGradNorm: clip,
                                        measuresGradNorm: evaluates || clip != nil))
        step += 1
        nextBatch += gradAccum
        examplesSeen += batchSize * gradAccum
        lastGradNorm = result.gradNorm?.shortestDouble
        if controls.evalStrategy == .steps && (step - 1) % evalFreq == 0 { try evaluate(losses) }
        progress(.step(step: step, totalSteps: totalSteps, epoch: epoch + 1, loss: result.loss, lr: lr, gradNorm: result.gradNorm))
    }

    /// The epoch-end losses (eval_strategy epoch), the caller's epoch-end work, the next epoch.
    private func finishEpoch(losses: ([[Int]]) throws -> (train: Double, validation: Double), endOfEpoch: () throws -> Void) throws {
        if controls.evalStrategy == .epoch { try evaluate(losses) }
        try endOfEpoch()
        epoch += 1
        nextBatch = 0
    }

    /// The book's evaluate_model: a fresh pass over the (shuffled) training loader and the
    /// validation loader; logged with the last step's learning rate and gradient norm.
    private func evaluate(_ losses: ([[Int]]) throws -> (train: Double, validation: Double)) throws {
        let l = try losses(drawEvaluationBatches())
        try record(LogRecord(kind: "eval", step: step, epoch: epoch + 1, epochProgress: Double(step) / Double(stepsPerEpoch),
                             examplesSeen: examplesSeen, trainLoss: l.train, valLoss: l.validation,
                             learningRate: schedule.learningRate(at: step - 1).shortestDouble, gradNorm: lastGradNorm,
                             elapsedSeconds: elapsed))
        try observe(.loss, value: l.validation)
    }

    /// A validation value of `metric` measured after the current step (values of the metric not
    /// tracked are ignored): keeps the best, writes the best checkpoint, counts evaluations
    /// without improvement and ends the run after `early_stopping_patience` of them.
    public func observe(_ metric: BestMetric, value: Double) throws {
        guard metric == controls.bestMetric else { return }
        if metric.improves(value, on: best.value) {
            best.value = value
            best.step = step
            best.epoch = epoch + 1
            best.evaluationsWithoutImprovement = 0
            if controls.saveBest { try saveBest() }
            return
        }
        best.evaluationsWithoutImprovement += 1
        let patience = controls.earlyStoppingPatience
        guard patience > 0 && best.evaluationsWithoutImprovement >= patience else { return }
        best.stoppedEarly = true
        progress(.note("early stopping after step \(step): \(patience) evaluation\(patience == 1 ? "" : "s") without a better \(metric.logKey) than \(best.value.map { String(format: "%.4g", $0) } ?? "-") (step \(best.step), epoch \(best.epoch))"))
    }

    /// The log's last line when early stopping ended the run.
    private func recordEarlyStop() throws {
        try record(LogRecord(kind: "early_stop", step: step, epoch: max(1, (step - 1) / stepsPerEpoch + 1),
                             epochProgress: Double(step) / Double(stepsPerEpoch), examplesSeen: examplesSeen, elapsedSeconds: elapsed))
    }

    private func outcome(interrupted: Bool) -> TrainingOutcome {
        TrainingOutcome(log: log, steps: step, examplesSeen: examplesSeen, elapsedSeconds: elapsed, interrupted: interrupted, best: best)
    }
}

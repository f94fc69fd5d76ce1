import ArtifactKit
import Foundation
import GPT2
import TrainingKit

/// The book's `train_classifier_simple`: epochs of shuffled batches (incomplete last batch
/// dropped), one AdamW step per batch (per `grad_accum` batches), losses on `eval_iter` batches
/// every `eval_freq` steps and accuracies on `eval_iter` batches after each epoch (the
/// bookkeeping, schedule, best evaluation and resuming: `EpochLoop`).
public final class ClassifierTrainer {
    public let model: ClassifierModel
    public let train: DataSplit
    public let validation: DataSplit
    public let settings: ClassifierSettings
    /// Identifies the shards and base weights; a resume state must carry the same.
    public let inputsKey: String
    public let progress: ProgressHandler
    /// Where the resume state is written (nil: never).
    public let stateURL: URL?

    /// log.jsonl, written as the run goes (nil: the log stays in memory).
    public let logURL: URL?
    /// Writes the best checkpoint (`--save-best`), given the evaluation that made it the best.
    public var saveBestCheckpoint: ((BestTracker) throws -> Void)?
    /// The processes sharing each batch (`mpirun -np N train`); one process by default.
    public var parallel = DataParallel.single
    /// The wall time of each optimizer step this process ran.
    public private(set) var stepTimes = StepTimes()

    public init(model: ClassifierModel, train: DataSplit, validation: DataSplit, settings: ClassifierSettings,
                inputsKey: String, stateURL: URL?, logURL: URL? = nil, progress: @escaping ProgressHandler = silentProgress) {
        self.model = model
        self.train = train
        self.validation = validation
        self.settings = settings
        self.inputsKey = inputsKey
        self.stateURL = stateURL
        self.logURL = logURL
        self.progress = progress
    }

    public var batchesPerEpoch: Int { train.rows.rowCount / settings.batchSize }
    /// Optimizer steps of the whole run.
    public var totalSteps: Int {
        EpochLoop.totalSteps(rowCount: train.rows.rowCount, settings: settings.loop)
    }

    /// Checks that `state` was written by a run with these settings and inputs.
    public func checkCompatible(_ state: ResumeState, source: String) throws {
        try state.checkCompatible(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: model.trainableRange, source: source)
    }

    /// Runs (or continues) training. `stopAfterSteps` stops like Ctrl-C after that many steps (for tests).
    public func run(resumeFrom state: ResumeState? = nil, stopAfterSteps: Int? = nil) throws -> TrainingOutcome {
        let loop = try EpochLoop(rowCount: train.rows.rowCount, settings: settings.loop, progress: progress)
        let optimizer = AdamW(parameterCount: model.trainableRange.count, learningRate: settings.learningRate,
                              weightDecay: settings.weightDecay)
        if let s = state {
            try checkCompatible(s, source: stateURL?.path ?? "state")
            model.modifyParameters(in: model.trainableRange) { $0.replaceSubrange(model.trainableRange, with: s.parameters) }
            try optimizer.restore(step: s.meta.optimizerStep, firstMoment: s.m, secondMoment: s.v)
            loop.restore(s.meta)
        }
        loop.parallel = parallel
        loop.logFile = logURL.map(TrainingLogFile.init)
        loop.saveBest = { [unowned loop] in try self.saveBestCheckpoint?(loop.best) }
        let valBatches = Array(validation.rows.sequentialBatches(batchSize: settings.batchSize).prefix(settings.evalIter))
        return try loop.run(stopAfterSteps: stopAfterSteps, train: { plan in
            try step(plan, optimizer: optimizer)
        }, losses: { trainBatches in
            (try model.lossAndAccuracy(batches: trainBatches, of: train, parallel: parallel).loss,
             try model.lossAndAccuracy(batches: valBatches, of: validation, parallel: parallel).loss)
        }, endOfEpoch: {
            // The book's per-epoch accuracies, on eval_iter batches of each loader.
            let ta = try model.lossAndAccuracy(batches: loop.drawEvaluationBatches(), of: train, parallel: parallel)
            let va = try model.lossAndAccuracy(batches: valBatches, of: validation, parallel: parallel)
            try loop.record(LogRecord(kind: "epoch", step: loop.step, epoch: loop.epoch + 1, epochProgress: Double(loop.epoch + 1),
                                      examplesSeen: loop.examplesSeen, trainAccuracy: ta.accuracy, valAccuracy: va.accuracy,
                                      elapsedSeconds: loop.elapsed))
            try loop.observe(.accuracy, value: va.accuracy)
        }, save: {
            guard let url = stateURL else { return }
            try ResumeState(meta: loop.meta(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: model.trainableRange),
                            parameters: Array(model.parameters[model.trainableRange]), m: optimizer.firstMoment,
                            v: optimizer.secondMoment)
                .write(to: url)
        })
    }

    /// One optimizer step: the micro-batches' gradients accumulated (each row weighs the same;
    /// with several processes each runs its share and the gradients are summed: `DataParallel`),
    /// measured and clipped when the plan says so, then AdamW at the plan's learning rate.
    func step(_ plan: StepPlan, optimizer: AdamW) throws -> StepResult {
        try stepTimes.measure { try timedStep(plan, optimizer: optimizer) }
    }

    private func timedStep(_ plan: StepPlan, optimizer: AdamW) throws -> StepResult {
        let part = try parallel.accumulate(plan, prepare: { $0 }) { call, rows, weight in
            try model.computeGradients(rows: rows, of: train, scale: weight, accumulate: call > 0)
        }
        let loss = try model.sumGradients(parallel, loss: part)
        let norm = plan.measuresGradNorm ? model.clipGradients(maxNorm: plan.maxGradNorm) : nil
        optimizer.learningRate = plan.learningRate
        model.modifyParameters(in: model.trainableRange) {
            optimizer.update(parameters: &$0, gradients: model.gradients, range: model.trainableRange)
        }
        return StepResult(loss: loss, gradNorm: norm)
    }
}

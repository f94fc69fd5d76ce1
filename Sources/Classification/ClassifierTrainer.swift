import ArtifactKit
import Foundation
import GPT2
import TrainingKit

/// The book's `train_classifier_simple`: epochs of shuffled batches (incomplete last batch
/// dropped), one AdamW step per batch, losses on `eval_iter` batches every `eval_freq` steps and
/// accuracies on `eval_iter` batches after each epoch (the bookkeeping and resuming: `EpochLoop`).
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

    public init(model: ClassifierModel, train: DataSplit, validation: DataSplit, settings: ClassifierSettings,
                inputsKey: String, stateURL: URL?, progress: @escaping ProgressHandler = silentProgress) {
        self.model = model
        self.train = train
        self.validation = validation
        self.settings = settings
        self.inputsKey = inputsKey
        self.stateURL = stateURL
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
        let valBatches = Array(validation.rows.sequentialBatches(batchSize: settings.batchSize).prefix(settings.evalIter))
        return try loop.run(stopAfterSteps: stopAfterSteps, train: { rows in
            let loss = try model.computeGradients(rows: rows, of: train)
            model.modifyParameters(in: model.trainableRange) {
                optimizer.update(parameters: &$0, gradients: model.gradients, range: model.trainableRange)
            }
            return loss
        }, losses: { trainBatches in
            (try model.lossAndAccuracy(batches: trainBatches, of: train).loss,
             try model.lossAndAccuracy(batches: valBatches, of: validation).loss)
        }, endOfEpoch: {
            // The book's per-epoch accuracies, on eval_iter batches of each loader.
            let ta = try model.lossAndAccuracy(batches: loop.drawEvaluationBatches(), of: train)
            let va = try model.lossAndAccuracy(batches: valBatches, of: validation)
            loop.record(LogRecord(kind: "epoch", step: loop.step, epoch: loop.epoch + 1, epochProgress: Double(loop.epoch + 1),
                                  examplesSeen: loop.examplesSeen, trainAccuracy: ta.accuracy, valAccuracy: va.accuracy,
                                  elapsedSeconds: loop.elapsed))
        }, save: {
            guard let url = stateURL else { return }
            try ResumeState(meta: loop.meta(settingsKey: settings.resumeKey, inputsKey: inputsKey, trained: model.trainableRange),
                            parameters: Array(model.parameters[model.trainableRange]), m: optimizer.firstMoment,
                            v: optimizer.secondMoment)
                .write(to: url)
        })
    }
}

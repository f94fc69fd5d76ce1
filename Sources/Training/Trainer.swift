import ArtifactKit
import Foundation

/// Ctrl-C (SIGINT) or SIGTERM during training: the handler only raises a flag; the loop notices it
/// after the current step, saves the resumable state and stops. A second signal ends the process at once.
public enum InterruptFlag {
    nonisolated(unsafe) static var raised: Int32 = 0

    public static var isRaised: Bool { raised != 0 }

    public static func installSIGINTHandler() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                InterruptFlag.raised = 1
                signal(s, SIG_DFL)
            }
        }
    }

    public static func reset() { raised = 0 }
}

/// Where progress goes: a bar on a terminal, plain lines elsewhere, nothing in tests.
public protocol TrainingReporter: AnyObject {
    func started(totalSteps: Int, doneSteps: Int)
    func stepDone(step: Int, totalSteps: Int, epoch: Int, loss: Float)
    func logged(_ record: LogRecord)
    func note(_ text: String)
}

public final class SilentReporter: TrainingReporter {
    public init() {}
    public func started(totalSteps: Int, doneSteps: Int) {}
    public func stepDone(step: Int, totalSteps: Int, epoch: Int, loss: Float) {}
    public func logged(_ record: LogRecord) {}
    public func note(_ text: String) {}
}

/// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise one line per log record.
public final class ConsoleReporter: TrainingReporter {
    let isTerminal: Bool
    let start = Date()
    var lastDraw = Date.distantPast
    var lastLoss: Float = .nan

    public init(isTerminal: Bool = isatty(2) != 0) { self.isTerminal = isTerminal }

    func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

    public func started(totalSteps: Int, doneSteps: Int) {
        if doneSteps > 0 { note("resuming at step \(doneSteps) of \(totalSteps)") }
    }

    public func stepDone(step: Int, totalSteps: Int, epoch: Int, loss: Float) {
        lastLoss = loss
        guard isTerminal, Date().timeIntervalSince(lastDraw) > 0.2 || step == totalSteps else { return }
        lastDraw = Date()
        let width = 30
        let filled = totalSteps == 0 ? width : width * step / totalSteps
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = Date().timeIntervalSince(start)
        let eta = step > 0 ? elapsed / Double(step) * Double(totalSteps - step) : 0
        write(String(format: "\r[%@] step %d/%d  epoch %d  loss %.3f  %.0fs (eta %.0fs) ",
                     bar, step, totalSteps, epoch, loss, elapsed, eta))
        if step == totalSteps { write("\n") }
    }

    public func logged(_ r: LogRecord) {
        var parts = ["ep \(r.epoch) (step \(r.step))"]
        if let t = r.trainLoss, let v = r.valLoss { parts.append(String(format: "train loss %.3f, val loss %.3f", t, v)) }
        if let t = r.trainAccuracy, let v = r.valAccuracy {
            parts.append(String(format: "training accuracy %.2f%% | validation accuracy %.2f%%", t * 100, v * 100))
        }
        parts.append(String(format: "%.1fs", r.elapsedSeconds))
        let line = parts.joined(separator: "  ")
        write(isTerminal ? "\r\u{1B}[K" + line + "\n" : line + "\n")
    }

    public func note(_ text: String) { write((isTerminal ? "\r\u{1B}[K" : "") + text + "\n") }
}

/// What a training run ended with.
public struct TrainingOutcome {
    public var log: [LogRecord]
    public var steps: Int
    public var examplesSeen: Int
    public var elapsedSeconds: Double
    /// True when stopped early (Ctrl-C or `stopAfterSteps`); the state file holds where.
    public var interrupted: Bool
}

/// The book's `train_classifier_simple`: epochs of shuffled batches (incomplete last batch
/// dropped), one AdamW step per batch, losses on `eval_iter` batches every `eval_freq` steps and
/// accuracies on `eval_iter` batches after each epoch (the bookkeeping and resuming: `EpochLoop`).
public final class Trainer {
    public let model: ClassifierModel
    public let train: DataSplit
    public let validation: DataSplit
    public let settings: TrainingSettings
    /// Identifies the shards and base weights; a resume state must carry the same.
    public let inputsKey: String
    public let reporter: TrainingReporter
    /// Where the resume state is written (nil: never).
    public let stateURL: URL?

    public init(model: ClassifierModel, train: DataSplit, validation: DataSplit, settings: TrainingSettings,
                inputsKey: String, stateURL: URL?, reporter: TrainingReporter = SilentReporter()) {
        self.model = model
        self.train = train
        self.validation = validation
        self.settings = settings
        self.inputsKey = inputsKey
        self.stateURL = stateURL
        self.reporter = reporter
    }

    public var batchesPerEpoch: Int { train.rows.rowCount / settings.batchSize }
    /// Optimizer steps of the whole run.
    public var totalSteps: Int {
        EpochLoop.totalSteps(rowCount: train.rows.rowCount, batchSize: settings.batchSize, epochs: settings.epochs)
    }

    /// Checks that `state` was written by a run with these settings and inputs.
    public func checkCompatible(_ state: ResumeState, source: String) throws {
        if state.meta.settingsKey != settings.resumeKey {
            throw PipelineError("the resume state was made with different train params:\n  state: \(state.meta.settingsKey)\n  now:   \(settings.resumeKey)",
                                location: source, hint: "rerun with the same params, or train without --resume to start over")
        }
        if state.meta.inputsKey != inputsKey {
            throw PipelineError("the resume state was made from different shards or base weights", location: source,
                                hint: "train without --resume to start over")
        }
        if state.meta.trainableLower != model.trainableRange.lowerBound || state.meta.trainableUpper != model.trainableRange.upperBound {
            throw PipelineError("the resume state trains a different part of the model", location: source,
                                hint: "train without --resume to start over")
        }
    }

    /// Runs (or continues) training. `stopAfterSteps` stops like Ctrl-C after that many steps (for tests).
    public func run(resumeFrom state: ResumeState? = nil, stopAfterSteps: Int? = nil) throws -> TrainingOutcome {
        let loop = try EpochLoop(rowCount: train.rows.rowCount, batchSize: settings.batchSize, epochs: settings.epochs,
                                 evalFreq: settings.evalFreq, evalIter: settings.evalIter, saveEvery: settings.saveEvery,
                                 seed: settings.seed, reporter: reporter)
        var optimizer = AdamW(range: model.trainableRange, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        if let s = state {
            try checkCompatible(s, source: stateURL?.path ?? "state")
            model.modifyParameters(in: model.trainableRange) { $0.replaceSubrange(model.trainableRange, with: s.parameters) }
            optimizer.m = s.m
            optimizer.v = s.v
            optimizer.step = s.meta.optimizerStep
            loop.restore(s.meta)
        }
        let valBatches = Array(validation.rows.sequentialBatches(batchSize: settings.batchSize).prefix(settings.evalIter))
        return try loop.run(stopAfterSteps: stopAfterSteps, train: { rows in
            let loss = try model.computeGradients(rows: rows, of: train)
            model.modifyParameters(in: model.trainableRange) { optimizer.update(parameters: &$0, gradients: model.gradients) }
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
                            parameters: Array(model.parameters[model.trainableRange]), m: optimizer.m, v: optimizer.v)
                .write(to: url)
        })
    }
}

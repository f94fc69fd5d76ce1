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
/// accuracies on `eval_iter` batches after each epoch.
///
/// Every pass over the training loader draws a new order from the seeded generator, as a
/// shuffling DataLoader does (the evaluation passes over training data too), so the run is a pure
/// function of the settings; `ResumeState` stores the generator so a resumed run is bit-identical.
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
        let bs = settings.batchSize, n = train.rows.rowCount
        guard batchesPerEpoch >= 1 else {
            throw PipelineError("the training set has \(n) rows, fewer than one batch of \(bs)", location: "train.batch_size",
                                hint: "use a smaller batch_size")
        }
        var optimizer = AdamW(range: model.trainableRange, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        var gen = SeededGenerator(seed: settings.seed ^ 0x5EED_7EA1)
        var epoch = 0, nextBatch = 0, examplesSeen = 0
        var permutation: [Int] = []
        var log: [LogRecord] = []
        var elapsedBefore = 0.0
        if let s = state {
            try checkCompatible(s, source: stateURL?.path ?? "state")
            model.modifyParameters(in: model.trainableRange) { $0.replaceSubrange(model.trainableRange, with: s.parameters) }
            optimizer.m = s.m
            optimizer.v = s.v
            optimizer.step = s.meta.optimizerStep
            gen = s.meta.generator
            epoch = s.meta.epoch
            nextBatch = s.meta.nextBatch
            permutation = s.meta.permutation
            examplesSeen = s.meta.examplesSeen
            elapsedBefore = s.meta.elapsedSeconds
            log = s.meta.log
        }
        let clock = Date()
        func elapsed() -> Double { elapsedBefore + Date().timeIntervalSince(clock) }
        let totalSteps = settings.epochs * batchesPerEpoch
        reporter.started(totalSteps: totalSteps, doneSteps: optimizer.step)

        func saveState() throws {
            guard let url = stateURL else { return }
            let meta = ResumeState.Meta(settingsKey: settings.resumeKey, inputsKey: inputsKey,
                                        trainableLower: model.trainableRange.lowerBound, trainableUpper: model.trainableRange.upperBound,
                                        optimizerStep: optimizer.step, epoch: epoch, nextBatch: nextBatch, permutation: permutation,
                                        generator: gen, examplesSeen: examplesSeen, elapsedSeconds: elapsed(), log: log)
            try ResumeState(meta: meta, parameters: Array(model.parameters[model.trainableRange]), m: optimizer.m, v: optimizer.v)
                .write(to: url)
        }
        func trainingBatches(_ order: [Int]) -> [[Int]] {
            (0..<(n / bs)).map { Array(order[($0 * bs)..<(($0 + 1) * bs)]) }
        }
        let evalIter = settings.evalIter
        let valBatches = Array(validation.rows.sequentialBatches(batchSize: bs).prefix(evalIter))

        while epoch < settings.epochs {
            if nextBatch == 0 { permutation = gen.permutation(n) }
            let batches = trainingBatches(permutation)
            while nextBatch < batches.count {
                let loss = try model.computeGradients(rows: batches[nextBatch], of: train)
                model.modifyParameters(in: model.trainableRange) { optimizer.update(parameters: &$0, gradients: model.gradients) }
                nextBatch += 1
                examplesSeen += bs
                let step = optimizer.step
                if (step - 1) % settings.evalFreq == 0 {
                    // The book's evaluate_model: a fresh pass over the (shuffled) training loader and the validation loader.
                    let trainEval = Array(trainingBatches(gen.permutation(n)).prefix(evalIter))
                    let t = try model.lossAndAccuracy(batches: trainEval, of: train)
                    let v = try model.lossAndAccuracy(batches: valBatches, of: validation)
                    let r = LogRecord(kind: "eval", step: step, epoch: epoch + 1,
                                      epochProgress: Double(step) / Double(batchesPerEpoch), examplesSeen: examplesSeen,
                                      trainLoss: t.loss, valLoss: v.loss, elapsedSeconds: elapsed())
                    log.append(r)
                    reporter.logged(r)
                }
                reporter.stepDone(step: step, totalSteps: totalSteps, epoch: epoch + 1, loss: loss)
                let stopNow = InterruptFlag.isRaised || stopAfterSteps == step
                if stopNow || (settings.saveEvery > 0 && step % settings.saveEvery == 0) { try saveState() }
                if stopNow {
                    return TrainingOutcome(log: log, steps: step, examplesSeen: examplesSeen, elapsedSeconds: elapsed(), interrupted: true)
                }
            }
            let trainAccBatches = Array(trainingBatches(gen.permutation(n)).prefix(evalIter))
            let ta = try model.lossAndAccuracy(batches: trainAccBatches, of: train)
            let va = try model.lossAndAccuracy(batches: valBatches, of: validation)
            let r = LogRecord(kind: "epoch", step: optimizer.step, epoch: epoch + 1, epochProgress: Double(epoch + 1),
                              examplesSeen: examplesSeen, trainAccuracy: ta.accuracy, valAccuracy: va.accuracy,
                              elapsedSeconds: elapsed())
            log.append(r)
            reporter.logged(r)
            epoch += 1
            nextBatch = 0
        }
        try saveState()
        return TrainingOutcome(log: log, steps: optimizer.step, examplesSeen: examplesSeen, elapsedSeconds: elapsed(), interrupted: false)
    }
}

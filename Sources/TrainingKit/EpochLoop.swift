import ArtifactKit
import Foundation

/// The epoch and batch bookkeeping shared by the book's two training loops, the classifier's
/// `train_classifier_simple` (`ClassifierTrainer`) and chapter 7's `train_model_simple` (`InstructTrainer`):
/// shuffled epochs of full batches (the incomplete last batch dropped), one optimizer step per
/// batch, losses every `evalFreq` steps on `evalIter` batches of a fresh shuffle of the training
/// rows, something at the end of each epoch, a resumable state every `saveEvery` steps, and a
/// clean stop on Ctrl-C or after `stopAfterSteps`.
///
/// Every pass over the training rows draws a new order from the seeded generator, as a shuffling
/// DataLoader does, so a run is a pure function of its settings; the resume state stores the
/// generator, the epoch, the batch and that epoch's order, so a resumed run is bit-identical.
/// The caller owns the model and the optimizer and does the work in the closures of `run`.
public final class EpochLoop {
    public let rowCount: Int
    public let batchSize: Int
    public let epochs: Int
    public let evalFreq: Int
    public let evalIter: Int
    public let saveEvery: Int
    /// Optimizer steps of the whole run (the epochs', or fewer for a shortened run).
    public let totalSteps: Int
    public let progress: ProgressHandler

    public private(set) var generator: SeededGenerator
    public private(set) var epoch = 0
    public private(set) var nextBatch = 0
    public private(set) var permutation: [Int] = []
    public private(set) var examplesSeen = 0
    /// Optimizer steps taken so far.
    public private(set) var step = 0
    public private(set) var log: [LogRecord] = []
    private var elapsedBefore = 0.0
    private var clock = Date()

    public init(rowCount: Int, settings s: LoopSettings, progress: @escaping ProgressHandler) throws {
        guard rowCount / s.batchSize >= 1 else {
            throw PipelineError("the training set has \(rowCount) rows, fewer than one batch of \(s.batchSize)",
                                location: "train.batch_size", hint: "use a smaller batch_size")
        }
        self.rowCount = rowCount
        batchSize = s.batchSize
        epochs = s.epochs
        evalFreq = s.evalFreq
        evalIter = s.evalIter
        saveEvery = s.saveEvery
        totalSteps = Self.totalSteps(rowCount: rowCount, settings: s)
        self.progress = progress
        generator = SeededGenerator(seed: s.seed ^ 0x5EED_7EA1)
    }

    public var batchesPerEpoch: Int { rowCount / batchSize }

    /// Optimizer steps of a run: every full batch of every epoch, or `maxSteps` when fewer.
    public static func totalSteps(rowCount: Int, settings s: LoopSettings) -> Int {
        let epochSteps = s.epochs * (rowCount / s.batchSize)
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
    }

    /// The position to store in a resume state.
    public func meta(settingsKey: String, inputsKey: String, trained: Range<Int>) -> ResumeState.Meta {
        ResumeState.Meta(settingsKey: settingsKey, inputsKey: inputsKey, trainableLower: trained.lowerBound,
                         trainableUpper: trained.upperBound, optimizerStep: step, epoch: epoch, nextBatch: nextBatch,
                         permutation: permutation, generator: generator, examplesSeen: examplesSeen,
                         elapsedSeconds: elapsed, log: log)
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

    /// Adds a record to the log and reports it.
    public func record(_ r: LogRecord) {
        log.append(r)
        progress(.logged(r))
    }

    /// Runs (or continues) the loop.
    /// - `train`: one optimizer step on the batch's rows; returns the batch loss.
    /// - `losses`: the mean training and validation losses, given the training batches to use.
    /// - `endOfEpoch`: after an epoch's last batch (may draw batches and `record`).
    /// - `save`: write the resume state (`meta(...)` gives the position).
    public func run(stopAfterSteps: Int?, train: ([Int]) throws -> Float,
             losses: ([[Int]]) throws -> (train: Double, validation: Double),
             endOfEpoch: () throws -> Void, save: () throws -> Void) throws -> TrainingOutcome {
        clock = Date()
        progress(.started(totalSteps: totalSteps, doneSteps: step))
        while epoch < epochs && step < totalSteps {
            if nextBatch == 0 { permutation = generator.permutation(rowCount) }
            let batches = trainingBatches(permutation)
            while nextBatch < batches.count && step < totalSteps {
                let loss = try train(batches[nextBatch])
                step += 1
                nextBatch += 1
                examplesSeen += batchSize
                if (step - 1) % evalFreq == 0 {
                    // The book's evaluate_model: a fresh pass over the (shuffled) training loader and the validation loader.
                    let l = try losses(drawEvaluationBatches())
                    record(LogRecord(kind: "eval", step: step, epoch: epoch + 1,
                                     epochProgress: Double(step) / Double(batchesPerEpoch), examplesSeen: examplesSeen,
                                     trainLoss: l.train, valLoss: l.validation, elapsedSeconds: elapsed))
                }
                progress(.step(step: step, totalSteps: totalSteps, epoch: epoch + 1, loss: loss))
                let stopNow = InterruptFlag.isRaised || stopAfterSteps == step
                if stopNow || (saveEvery > 0 && step % saveEvery == 0) { try save() }
                if stopNow {
                    return TrainingOutcome(log: log, steps: step, examplesSeen: examplesSeen, elapsedSeconds: elapsed, interrupted: true)
                }
            }
            if nextBatch == batches.count {
                try endOfEpoch()
                epoch += 1
                nextBatch = 0
            }
        }
        try save()
        return TrainingOutcome(log: log, steps: step, examplesSeen: examplesSeen, elapsedSeconds: elapsed, interrupted: false)
    }
}

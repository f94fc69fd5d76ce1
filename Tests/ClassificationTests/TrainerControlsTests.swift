import ArtifactKit
import GPT2
import TestSupport
import TrainingKit
import Classification
import XCTest

/// The toy trainer of `Toy` with the training controls: best-checkpoint writes recorded.
enum ControlsToy {
    struct Run {
        var parameters: [Float]
        var log: [LogRecord]
        var outcome: TrainingOutcome
        /// The best trackers the trainer asked to save, with the parameters at that moment.
        var bestSaves: [(BestTracker, [Float])]
    }

    /// Every control on: cosine from a warmup ratio to min_lr, clipping, two micro-batches per
    /// step, the best validation loss tracked and saved, early stopping.
    static func settings(epochs: Int = 4) -> ClassifierSettings {
        var s = Toy.settings(.all, Pooling(position: .flexible), epochs: epochs)
        s.batchSize = 2
        s.evalFreq = 1
        s.saveEvery = 0
        s.learningRate = 5e-2
        s.controls = TrainingControls(lrSchedule: .cosine, warmupRatio: 0.2, initialLR: 1e-3, minLR: 1e-3, maxGradNorm: 0.05,
                                      gradAccum: 2, saveBest: true, earlyStoppingPatience: 3)
        return s
    }

    static func run(_ s: ClassifierSettings, stateURL: URL? = nil, stopAfter: Int? = nil, resume: ResumeState? = nil,
                    progress: @escaping ProgressHandler = silentProgress) throws -> Run {
        let model = try ClassifierModel(backend: ToyBackend(layout: Toy.layout), parameters: Toy.parameters(), pooling: s.pooling,
                                        trainable: s.trainableLayers, trimBatches: true)
        let train = DataSplit(name: "train", rows: Toy.rows(count: 26, seed: 1))
        let val = DataSplit(name: "validation", rows: Toy.rows(count: 9, seed: 2))
        let trainer = ClassifierTrainer(model: model, train: train, validation: val, settings: s, inputsKey: "toy", stateURL: stateURL,
                                        progress: progress)
        var saves: [(BestTracker, [Float])] = []
        trainer.saveBestCheckpoint = { saves.append(($0, model.parameters)) }
        let outcome = try trainer.run(resumeFrom: resume, stopAfterSteps: stopAfter)
        let log = outcome.log.map { r -> LogRecord in var r = r; r.elapsedSeconds = 0; return r }
        return Run(parameters: model.parameters, log: log, outcome: outcome, bestSaves: saves)
    }
}

final class TrainerControlsTests: XCTestCase {
    /// grad_accum N with batch_size B is one batch of N x B per step (each micro-batch's mean loss
    /// weighted 1/N): the same parameters after one step and after whole epochs, to float rounding.
    func testGradAccumEqualsOneLargerBatch() throws {
        for trainable in [TrainableLayers.all, .lastBlock] {
            var big = Toy.settings(trainable, Pooling(position: .flexible), epochs: 2)
            big.batchSize = 4
            var small = big
            small.batchSize = 2
            small.controls.gradAccum = 2
            for maxSteps in [1, 12] {
                big.maxSteps = maxSteps
                small.maxSteps = maxSteps
                let a = try Toy.run(big, cache: true, trim: true), b = try Toy.run(small, cache: true, trim: true)
                XCTAssertEqual(a.2.steps, maxSteps)
                XCTAssertEqual(b.2.steps, maxSteps)
                XCTAssertEqual(a.2.examplesSeen, b.2.examplesSeen)
                let start = Toy.parameters()
                var moved = 0
                for i in a.0.indices {
                    XCTAssertEqual(a.0[i], b.0[i], accuracy: 2e-6, "\(trainable) \(maxSteps) steps, parameter \(i)")
                    if a.0[i] != start[i] { moved += 1 }
                }
                XCTAssertGreaterThan(moved, 0)
                // The logged training losses of the step's batch agree too (same rows, same weights).
                let lossesA = a.1.filter { $0.kind == "eval" }.map(\.step), lossesB = b.1.filter { $0.kind == "eval" }.map(\.step)
                XCTAssertEqual(lossesA, lossesB)
            }
        }
    }

    /// Interrupting anywhere — mid-warmup, with an accumulation in the schedule's decay, right at
    /// an epoch end, after the best checkpoint moved, after early stopping decided — and resuming
    /// ends bit-identical to one uninterrupted run: parameters, log, best evaluation, early-stop
    /// counters and the best checkpoints written.
    func testResumeEqualsUninterruptedWithEveryControl() throws {
        for strategy in [EvalStrategy.steps, .epoch] {
            var s = ControlsToy.settings(epochs: strategy == .steps ? 4 : 10)
            s.controls.evalStrategy = strategy
            if strategy == .epoch {
                s.learningRate = 0.2
                s.controls.earlyStoppingPatience = 1
            }
            let whole = try ControlsToy.run(s)
            XCTAssertTrue(whole.outcome.best.stoppedEarly, "\(strategy): the toy should stop early: \(whole.log.compactMap(\.valLoss))")
            XCTAssertLessThan(whole.outcome.steps, s.epochs * 6)
            XCTAssertEqual(whole.log.last?.kind, "early_stop")
            XCTAssertFalse(whole.bestSaves.isEmpty)
            XCTAssertEqual(whole.bestSaves.last?.0.value, whole.outcome.best.value)
            XCTAssertTrue(whole.log.contains { ($0.gradNorm ?? 0) > 0.05 }, "some steps are clipped")
            let lrs = whole.log.filter { $0.kind == "eval" }.compactMap(\.learningRate)
            XCTAssertEqual(lrs.count, whole.log.filter { $0.kind == "eval" }.count)
            XCTAssertNotEqual(Set(lrs).count, 1, "the schedule moves")

            let dir = try TestPaths.makeTempDir("controls-resume")
            defer { try? FileManager.default.removeItem(at: dir) }
            let stateURL = dir.appendingPathComponent("state")
            for stop in Array(1...whole.outcome.steps) {
                let first = try ControlsToy.run(s, stateURL: stateURL, stopAfter: stop)
                let state = try ResumeState.read(from: stateURL)
                XCTAssertEqual(state.meta.nextBatch % 2, 0, "states fall between optimizer steps")
                let second = try ControlsToy.run(s, stateURL: stateURL, resume: state)
                XCTAssertEqual(second.parameters, whole.parameters, "\(strategy) stop \(stop)")
                XCTAssertEqual(second.log, whole.log, "\(strategy) stop \(stop)")
                XCTAssertEqual(second.outcome.best, whole.outcome.best, "\(strategy) stop \(stop)")
                let saves = first.bestSaves + second.bestSaves
                XCTAssertEqual(saves.last?.0, whole.bestSaves.last?.0)
                XCTAssertEqual(saves.last?.1, whole.bestSaves.last?.1)
            }
        }
    }

    /// The accuracy metric follows the epoch-end validation accuracy; a state of a run that
    /// stopped early is a finished run.
    func testBestAccuracyAndEarlyStopping() throws {
        var s = ControlsToy.settings(epochs: 8)
        s.controls.bestMetric = .accuracy
        s.controls.earlyStoppingPatience = 2
        var notes: [String] = []
        let r = try ControlsToy.run(s, progress: { if case .note(let t) = $0 { notes.append(t) } })
        let accuracies = r.log.filter { $0.kind == "epoch" }.map { $0.valAccuracy! }
        XCTAssertEqual(r.outcome.best.value, accuracies.max())
        XCTAssertEqual(r.bestSaves.map { $0.0.value! }, r.bestSaves.map { $0.0.value! }.sorted(), "each save is an improvement")
        XCTAssertTrue(r.outcome.best.stoppedEarly, "\(accuracies)")
        XCTAssertLessThan(r.outcome.steps, 8 * 6)
        XCTAssertEqual(r.outcome.best.evaluationsWithoutImprovement, 2)
        XCTAssertTrue(accuracies.suffix(2).allSatisfy { $0 <= r.outcome.best.value! }, "\(accuracies)")
        XCTAssertTrue(notes.contains { $0.contains("early stopping") && $0.contains("val_accuracy") }, "\(notes)")
        XCTAssertEqual(r.log.last?.kind, "early_stop")
        XCTAssertEqual(r.log.last?.step, r.outcome.steps)
    }

    /// Clipping to a norm far above every gradient changes nothing; measuring it does not either.
    func testClippingAboveEveryNormChangesNothing() throws {
        var s = Toy.settings(.all, epochs: 2)
        let plain = try Toy.run(s, cache: true, trim: true)
        s.controls.maxGradNorm = 1e6
        let clipped = try Toy.run(s, cache: true, trim: true)
        XCTAssertEqual(plain.0, clipped.0)
        XCTAssertEqual(plain.1.map(\.gradNorm), clipped.1.map(\.gradNorm))
        XCTAssertTrue(plain.1.filter { $0.kind == "eval" }.allSatisfy { $0.gradNorm != nil && $0.learningRate == 1e-2 })
    }
}

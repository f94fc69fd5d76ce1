import ArtifactKit
import GPT2
import TestSupport
import TrainingKit
import Classification
import XCTest

/// Small synthetic data and a toy transformer (see ToyBackend) for the training-loop properties.
enum Toy {
    static let config = GPT2Config(name: "toy", vocabSize: 32, contextLength: 12, embDim: 6, nHeads: 2, nLayers: 3)
    static let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))

    static func parameters(seed: UInt64 = 7) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return (0..<layout.totalCount).map { _ in g.uniform(-0.5, 0.5) }
    }

    /// Rows of 1...10 real tokens padded with 31 to 10 positions; the label is whether token 5 occurs.
    static func rows(count: Int, seed: UInt64) -> LabeledRows {
        LabeledRows.random(count: count, seed: seed, sequenceLength: 10, vocab: 30, marker: 5, pad: 31)
    }

    static func settings(_ trainable: TrainableLayers, _ pooling: Pooling = Pooling(), epochs: Int = 2) -> ClassifierSettings {
        var s = ClassifierSettings()
        s.weights = .random
        s.trainableLayers = trainable
        s.pooling = pooling
        s.epochs = epochs
        s.batchSize = 4
        s.evalFreq = 3
        s.evalIter = 2
        s.learningRate = 1e-2
        return s
    }

    /// Trains from fresh parameters and returns the final parameters and log (elapsed times zeroed).
    static func run(_ s: ClassifierSettings, cache: Bool, trim: Bool, stateURL: URL? = nil, stopAfter: Int? = nil,
                    resume: ResumeState? = nil, backend: ToyBackend = ToyBackend(layout: layout)) throws -> ([Float], [LogRecord], TrainingOutcome) {
        let model = try ClassifierModel(backend: backend, parameters: parameters(), pooling: s.pooling,
                                        trainable: s.trainableLayers, trimBatches: trim)
        let train = DataSplit(name: "train", rows: rows(count: 26, seed: 1))
        let val = DataSplit(name: "validation", rows: rows(count: 9, seed: 2))
        if cache { try model.fillCache(train); try model.fillCache(val) }
        let trainer = ClassifierTrainer(model: model, train: train, validation: val, settings: s, inputsKey: "toy", stateURL: stateURL)
        let outcome = try trainer.run(resumeFrom: resume, stopAfterSteps: stopAfter)
        let log = outcome.log.map { r -> LogRecord in var r = r; r.elapsedSeconds = 0; return r }
        return (model.parameters, log, outcome)
    }
}

final class TrainerTests: XCTestCase {
    let poolings = [Pooling(position: .last), Pooling(position: .first), Pooling(position: .flexible),
                    Pooling(position: .last, averageEmbeddings: true)]

    /// The head, pooling and loss gradients (ours) and the toy trunk's, against central differences.
    func testGradientsMatchFiniteDifferences() throws {
        for pooling in poolings {
            for trainable in [TrainableLayers.lastLayer, .lastTwoBlocks, .all] {
                let backend = ToyBackend(layout: Toy.layout)
                let model = try ClassifierModel(backend: backend, parameters: Toy.parameters(), pooling: pooling, trainable: trainable)
                let split = DataSplit(name: "t", rows: Toy.rows(count: 5, seed: 3))
                let rows = [0, 1, 2, 3, 4]
                _ = try model.computeGradients(rows: rows, of: split)
                let analytic = model.gradients
                let range = model.trainableRange
                var picks = stride(from: range.lowerBound, to: range.upperBound, by: max(1, range.count / 23)).map { $0 }
                picks.append(range.upperBound - 1)
                for i in picks {
                    let saved = model.parameters[i]
                    let h: Float = 3e-3
                    model.modifyParameters(in: i..<(i + 1)) { $0[i] = saved + h }
                    let up = try model.lossAndAccuracy(batches: [rows], of: split).loss
                    model.modifyParameters(in: i..<(i + 1)) { $0[i] = saved - h }
                    let down = try model.lossAndAccuracy(batches: [rows], of: split).loss
                    model.modifyParameters(in: i..<(i + 1)) { $0[i] = saved }
                    let numeric = Float((up - down) / Double(2 * h))
                    XCTAssertEqual(analytic[i], numeric, accuracy: 6e-5 + 3e-3 * abs(numeric),
                                   "param \(i) \(trainable) \(pooling)")
                }
            }
        }
    }

    /// Reusing the frozen trunk's output gives the same run as recomputing it every time, and runs fewer blocks.
    func testFrozenTrunkCacheGivesSameRunAsRecomputing() throws {
        for trainable in [TrainableLayers.lastLayer, .lastBlock, .lastTwoBlocks] {
            for pooling in poolings {
                let s = Toy.settings(trainable, pooling)
                let cachedBackend = ToyBackend(layout: Toy.layout), plainBackend = ToyBackend(layout: Toy.layout)
                let cached = try Toy.run(s, cache: true, trim: true, backend: cachedBackend)
                let plain = try Toy.run(s, cache: false, trim: true, backend: plainBackend)
                XCTAssertEqual(cached.1, plain.1, "\(trainable) \(pooling)")
                for (a, b) in zip(cached.0, plain.0) { XCTAssertEqual(a, b, accuracy: 1e-6) }
                XCTAssertLessThan(cachedBackend.blockForwardCount, plainBackend.blockForwardCount)
                XCTAssertGreaterThan(cached.1.filter { $0.kind == "eval" }.count, 2)
                XCTAssertEqual(cached.1.filter { $0.kind == "epoch" }.count, 2)
            }
        }
    }

    /// Cutting batches to the positions the pooled output needs changes nothing.
    func testTrimmingBatchesGivesSameRun() throws {
        for trainable in [TrainableLayers.lastLayer, .lastBlock, .all] {
            for pooling in poolings {
                let s = Toy.settings(trainable, pooling)
                let trimmed = try Toy.run(s, cache: false, trim: true)
                let full = try Toy.run(s, cache: false, trim: false)
                XCTAssertEqual(trimmed.1.count, full.1.count)
                for (a, b) in zip(trimmed.1, full.1) {
                    XCTAssertEqual(a.trainLoss ?? 0, b.trainLoss ?? 0, accuracy: 1e-5)
                    XCTAssertEqual(a.valLoss ?? 0, b.valLoss ?? 0, accuracy: 1e-5)
                    XCTAssertEqual(a.trainAccuracy, b.trainAccuracy)
                    XCTAssertEqual(a.valAccuracy, b.valAccuracy)
                }
                for (a, b) in zip(trimmed.0, full.0) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            }
        }
        // With `last` pooling the padding is read, so nothing may be cut.
        let rows = Toy.rows(count: 4, seed: 9)
        XCTAssertEqual(rows.batch([0, 1], pooling: Pooling(position: .last), trim: true).length, rows.sequenceLength)
        XCTAssertEqual(rows.batch([0, 1], pooling: Pooling(position: .first), trim: true).length, 1)
        XCTAssertEqual(rows.batch([0, 1], pooling: Pooling(position: .flexible), trim: true).length, max(rows.lengths[0], rows.lengths[1]))
    }

    /// Stopping after some steps and resuming from the saved state ends bit-identical to one uninterrupted run.
    func testResumeEqualsUninterrupted() throws {
        for trainable in [TrainableLayers.lastBlock, .all] {
            let dir = try TestPaths.makeTempDir("resume")
            defer { try? FileManager.default.removeItem(at: dir) }
            let stateURL = dir.appendingPathComponent("state")
            var s = Toy.settings(trainable, epochs: 3)
            s.saveEvery = 0
            let whole = try Toy.run(s, cache: true, trim: true)
            for stop in [2, 6, 12] {   // mid-epoch, at the end of the first epoch (6 batches), later
                let first = try Toy.run(s, cache: true, trim: true, stateURL: stateURL, stopAfter: stop)
                XCTAssertTrue(first.2.interrupted)
                XCTAssertEqual(first.2.steps, stop)
                let state = try ResumeState.read(from: stateURL)
                let second = try Toy.run(s, cache: true, trim: true, stateURL: stateURL, resume: state)
                XCTAssertFalse(second.2.interrupted)
                XCTAssertEqual(second.0, whole.0, "\(trainable) stop \(stop)")   // bit-exact
                XCTAssertEqual(second.1, whole.1)
            }
        }
    }

    func testResumeFromDifferentParamsIsRejected() throws {
        let dir = try TestPaths.makeTempDir("resume-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stateURL = dir.appendingPathComponent("state")
        let s = Toy.settings(.lastBlock)
        _ = try Toy.run(s, cache: true, trim: true, stateURL: stateURL, stopAfter: 2)
        let state = try ResumeState.read(from: stateURL)
        var other = s
        other.learningRate = 1e-3
        XCTAssertThrowsError(try Toy.run(other, cache: true, trim: true, stateURL: stateURL, resume: state)) { error in
            XCTAssertTrue("\(error)".contains("different train params"), "\(error)")
        }
        var moreEpochs = s
        moreEpochs.epochs = 4   // allowed: continuing for longer
        XCTAssertNoThrow(try Toy.run(moreEpochs, cache: true, trim: true, stateURL: stateURL, resume: state))
        // A corrupted file is reported, not crashed on.
        try Data("LLMFTRES".utf8).write(to: stateURL)
        XCTAssertThrowsError(try ResumeState.read(from: stateURL)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    }

    /// Training the toy on a learnable task lowers the loss: the loop really optimises.
    func testTrainingLowersTheLoss() throws {
        var s = Toy.settings(.all, Pooling(position: .flexible), epochs: 6)
        s.learningRate = 3e-2
        let (_, log, _) = try Toy.run(s, cache: true, trim: true)
        let evals = log.filter { $0.kind == "eval" }
        XCTAssertLessThan(evals.last!.trainLoss!, evals.first!.trainLoss! * 0.8, "\(evals.map { $0.trainLoss! })")
    }

    func testBatchesPerEpochDropTheIncompleteBatch() throws {
        let s = Toy.settings(.lastLayer, epochs: 1)
        let (_, log, outcome) = try Toy.run(s, cache: true, trim: true)
        XCTAssertEqual(outcome.steps, 26 / 4)
        XCTAssertEqual(outcome.examplesSeen, 24)
        XCTAssertEqual(log.filter { $0.kind == "eval" }.map(\.step), [1, 4])   // the book's global_step 0, 3
    }

    func testBadLoRARankIsRefusedClearly() throws {
        var s = Toy.settings(.lora)
        try s.validate()
        for rank in [0, -1] {
            s.loraRank = rank
            XCTAssertThrowsError(try s.validate()) {
                XCTAssertTrue("\($0)".contains("LoRA rank must be at least 1, got \(rank)") && "\($0)".contains("train.lora_rank"), "\($0)")
            }
        }
        s.loraRank = 16
        s.trainableLayers = .lastBlock
        s.weights = .pretrained
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("weights file")) }
    }
}

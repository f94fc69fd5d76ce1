import ArtifactKit
import GPT2
import TestSupport
import TrainingKit
@testable import Classification
import XCTest

/// The production classifier path (ClassifierModel over GPT2Backend: GPT2Trunk, the selected-
/// position last block, ClassifierHead) with its optimisations on against the same path with them
/// off, and the trainer's shortcuts (cache, trimming) on the real kernels, on a tiny GPT-2. The path
/// with everything off is itself checked against PyTorch (ClassifierParityTests) and against
/// finite differences for every pooling (ClassifierFiniteDifferenceTests).
final class GPT2BackendTests: XCTestCase {
    static let config = GPT2Config(name: "tiny", vocabSize: 40, contextLength: 16, embDim: 16, nHeads: 2, nLayers: 3)
    static let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))

    static func parameters(_ layout: ParameterLayout = layout) -> [Float] {
        var g = SeededGenerator(seed: 11)
        var p = (0..<layout.totalCount).map { _ in g.uniform(-0.2, 0.2) }
        // LayerNorm weights near 1, as in a real model.
        for spec in layout.tensors where spec.name.hasSuffix("ln_1.weight") || spec.name.hasSuffix("ln_2.weight") || spec.name == "ln_f.weight" {
            for i in spec.range { p[i] += 1 }
        }
        return p
    }

    /// Rows of 1...9 real tokens padded with 39 to 9 positions; the label is whether token 3 occurs.
    static func rows(count: Int, seed: UInt64) -> LabeledRows {
        LabeledRows.random(count: count, seed: seed, sequenceLength: 9, vocab: 39, marker: 3, pad: 39)
    }

    /// Loss and gradients (the whole flat buffer) of one batch of `rows` with `pooling`.
    func lossAndGradients(_ trainable: TrainableLayers, _ pooling: Pooling, rows: LabeledRows, trim: Bool, shortcut: Bool,
                          cache: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> (Float, [Float]) {
        let backend = try GPT2Backend(layout: Self.layout, parameters: Self.parameters())
        let model = try ClassifierModel(backend: backend, parameters: Self.parameters(), pooling: pooling,
                                        trainable: trainable, trimBatches: trim)
        model.selectedPositionShortcut = shortcut
        let split = DataSplit(name: "t", rows: rows)
        if cache { try model.fillCache(split) }
        XCTAssertEqual(split.isCached, cache && trainable != .all, "frozen-trunk cache", file: file, line: line)
        // The last block at the pooled positions only: `last_block` with one pooled position per row.
        let b = rows.batch(Array(0..<rows.rowCount), pooling: pooling, trim: trim)
        let selected = shortcut && trainable == .lastBlock && !pooling.averageEmbeddings
        XCTAssertEqual(try model.pooledVectors(b, of: split, training: false).selected, selected, "selected-position block",
                       file: file, line: line)
        let loss = try model.computeGradients(rows: Array(0..<rows.rowCount), of: split)
        return (loss, model.gradients)
    }

    /// Loss and gradients of one batch through every optimisation — the frozen-trunk cache, batch
    /// trimming, the trunk split at the lowest trainable block, the last block at the pooled
    /// positions without keys and values — equal those of the path with all of them off: every
    /// tensor trainable (every block in full from the embeddings, nothing cached), full-length
    /// batches. Compared on the tensors the optimised case trains (a tensor's gradient does not
    /// depend on what else trains); the others must stay exactly 0. Every pooling is covered.
    func testOptimisedPathsMatchTheFullPath() throws {
        let rows = Self.rows(count: 6, seed: 5)
        let cases: [(TrainableLayers, Pooling)] = [
            (.lastBlock, Pooling(position: .last)), (.lastBlock, Pooling(position: .first)),
            (.lastBlock, Pooling(position: .flexible)), (.lastBlock, Pooling(position: .last, averageEmbeddings: true)),
            (.lastTwoBlocks, Pooling(position: .flexible)), (.lastTwoBlocks, Pooling(position: .last, averageEmbeddings: true)),
            (.all, Pooling(position: .flexible)), (.all, Pooling(position: .first)),
            (.lastLayer, Pooling(position: .last)), (.lastLayer, Pooling(position: .flexible)),
        ]
        for (trainable, pooling) in cases {
            let (refLoss, refGrad) = try lossAndGradients(.all, pooling, rows: rows, trim: false, shortcut: false, cache: false)
            let trained = try ClassifierModel(backend: try GPT2Backend(layout: Self.layout, parameters: Self.parameters()),
                                              parameters: Self.parameters(), pooling: pooling, trainable: trainable).trainableRange
            for (trim, shortcut, cache) in [(false, false, false), (true, false, true), (false, true, false), (true, true, false),
                                            (false, true, true), (true, true, true)] {
                let what = "\(trainable) \(pooling) trim \(trim) shortcut \(shortcut) cache \(cache)"
                let (loss, grad) = try lossAndGradients(trainable, pooling, rows: rows, trim: trim, shortcut: shortcut, cache: cache)
                XCTAssertEqual(loss, refLoss, accuracy: 1e-5, what)
                var maxDiff: Float = 0, maxRef: Float = 0
                for i in trained {
                    maxDiff = max(maxDiff, abs(grad[i] - refGrad[i]))
                    maxRef = max(maxRef, abs(refGrad[i]))
                }
                XCTAssertGreaterThan(maxRef, 1e-4, what)
                XCTAssertLessThan(maxDiff, 1e-5 + 1e-4 * maxRef, what)
                XCTAssertTrue(grad[..<trained.lowerBound].allSatisfy { $0 == 0 }, "frozen tensors got gradients: \(what)")
            }
        }
    }

    /// On the real kernels, the frozen-trunk cache and batch trimming give the same training run
    /// as recomputing everything at full length (to float rounding).
    func testCacheAndTrimmingMatchRecomputingOnRealKernels() throws {
        for (trainable, pooling) in [(TrainableLayers.lastBlock, Pooling(position: .last)),
                                     (.lastTwoBlocks, Pooling(position: .flexible)),
                                     (.lastLayer, Pooling(position: .flexible))] {
            var s = ClassifierSettings()
            s.weights = .random; s.trainableLayers = trainable; s.pooling = pooling
            s.epochs = 2; s.batchSize = 4; s.evalFreq = 2; s.evalIter = 2; s.learningRate = 1e-2
            // Compared through the losses and the final logits, not raw parameters: AdamW divides by
            // sqrt(v), so a parameter whose gradient is ~0 moves by ±lr on float-rounding noise alone.
            func run(cache: Bool, trim: Bool) throws -> ([Float], [LogRecord]) {
                let backend = try GPT2Backend(layout: Self.layout, parameters: Self.parameters())
                let model = try ClassifierModel(backend: backend, parameters: Self.parameters(), pooling: pooling,
                                                trainable: trainable, trimBatches: trim)
                let train = DataSplit(name: "train", rows: Self.rows(count: 18, seed: 1))
                let val = DataSplit(name: "validation", rows: Self.rows(count: 7, seed: 2))
                if cache { try model.fillCache(train); try model.fillCache(val) }
                let outcome = try ClassifierTrainer(model: model, train: train, validation: val, settings: s, inputsKey: "k", stateURL: nil).run()
                return (try model.logits(rows: Array(0..<7), of: val).flatMap { $0 }, outcome.log)
            }
            let fast = try run(cache: true, trim: true), slow = try run(cache: false, trim: false)
            XCTAssertEqual(fast.1.count, slow.1.count)
            for (a, b) in zip(fast.1, slow.1) {
                XCTAssertEqual(a.trainLoss ?? 0, b.trainLoss ?? 0, accuracy: 1e-4, "\(trainable) \(pooling)")
                XCTAssertEqual(a.valLoss ?? 0, b.valLoss ?? 0, accuracy: 1e-4)
                XCTAssertEqual(a.trainAccuracy ?? 0, b.trainAccuracy ?? 0, accuracy: 1e-9)
                XCTAssertEqual(a.valAccuracy ?? 0, b.valAccuracy ?? 0, accuracy: 1e-9)
            }
            var maxDiff: Float = 0
            for (a, b) in zip(fast.0, slow.0) { maxDiff = max(maxDiff, abs(a - b)) }
            XCTAssertLessThan(maxDiff, 2e-3, "\(trainable) \(pooling)")
        }
    }

    /// The frozen-trunk pass gives each row the same states, to float rounding, however many rows
    /// share a pass, so the pass size is a speed setting only. Not bit for bit: OpenBLAS picks its
    /// sgemm kernels by matrix size (here the logits moved by up to ~3e-7 between 1, 4 and 16 rows
    /// per pass), which is why train and evaluate both fill the cache with `trunkChunk` rows.
    func testTrunkChunkDoesNotChangeTheStates() throws {
        for (trainable, pooling) in [(TrainableLayers.lastBlock, Pooling(position: .last)), (.lastLayer, Pooling(position: .flexible))] {
            var caches: [[Float]] = []
            for chunk in [1, 4, 16] {
                let backend = try GPT2Backend(layout: Self.layout, parameters: Self.parameters())
                let model = try ClassifierModel(backend: backend, parameters: Self.parameters(), pooling: pooling, trainable: trainable)
                let split = DataSplit(name: "train", rows: Self.rows(count: 18, seed: 1))
                try model.fillCache(split, chunk: chunk)
                XCTAssertTrue(split.isCached)
                caches.append(try model.logits(rows: Array(0..<18), of: split).flatMap { $0 })
            }
            for other in caches.dropFirst() {
                XCTAssertEqual(other.count, caches[0].count)
                XCTAssertLessThan(zip(other, caches[0]).map { abs($0 - $1) }.max()!, 1e-5, "\(trainable)")
            }
        }
    }

    /// Rows repeated within a split or across splits copy the frozen-layer states of their first
    /// occurrence (the count is returned), and every row then gives the logits of running the
    /// whole model on it (no cache).
    func testRepeatedRowsCopyTheirStates() throws {
        let a = Self.rows(count: 12, seed: 1), other = Self.rows(count: 5, seed: 9)
        // b: rows 3 and 7 of a, two new rows, row 3 of a again, a new row twice.
        let picks: [(LabeledRows, Int)] = [(a, 3), (other, 0), (a, 7), (other, 1), (a, 3), (other, 2), (other, 2)]
        let S = a.sequenceLength
        let b = LabeledRows(tokens: picks.flatMap { Array($0.0.tokens[($0.1 * S)..<(($0.1 + 1) * S)]) },
                            labels: picks.map { $0.0.labels[$0.1] }, lengths: picks.map { $0.0.lengths[$0.1] },
                            sequenceLength: S, padTokenID: 39, numClasses: 2)
        let uniqueInA = Set((0..<a.rowCount).map { [a.lengths[$0]] + a.tokens[($0 * S)..<(($0 + 1) * S)].map(Int.init) }).count
        for (trainable, pooling) in [(TrainableLayers.lastBlock, Pooling(position: .last)),
                                     (.lastBlock, Pooling(position: .flexible)), (.lastLayer, Pooling(position: .flexible))] {
            let model = try ClassifierModel(backend: try GPT2Backend(layout: Self.layout, parameters: Self.parameters()),
                                            parameters: Self.parameters(), pooling: pooling, trainable: trainable)
            let splitA = DataSplit(name: "train", rows: a), splitB = DataSplit(name: "validation", rows: b)
            var phases: [(done: Int, total: Int)] = []
            let copied = try model.fillCache([splitA, splitB], progress: {
                if case .phase("frozen layers", let done, let total) = $0 { phases.append((done, total)) }
            })
            XCTAssertEqual(copied, (a.rowCount - uniqueInA) + 4, "\(trainable) \(pooling)")
            // Progress counts the rows run (not the copies), from 0 to all of them, never backwards.
            let run = a.rowCount + b.rowCount - copied
            XCTAssertEqual(phases.first?.done, 0)
            XCTAssertEqual(phases.last?.done, run)
            XCTAssertTrue(phases.allSatisfy { $0.total == run })
            XCTAssertEqual(phases.map(\.done), phases.map(\.done).sorted())
            let fresh = try ClassifierModel(backend: try GPT2Backend(layout: Self.layout, parameters: Self.parameters()),
                                            parameters: Self.parameters(), pooling: pooling, trainable: trainable)
            for (split, rows) in [(splitA, a), (splitB, b)] {
                let cached = try model.logits(rows: Array(0..<rows.rowCount), of: split).flatMap { $0 }
                let uncached = try fresh.logits(rows: Array(0..<rows.rowCount), of: DataSplit(name: split.name, rows: rows)).flatMap { $0 }
                XCTAssertLessThan(zip(cached, uncached).map { abs($0 - $1) }.max()!, 1e-5, "\(trainable) \(pooling) \(split.name)")
            }
        }
    }
}

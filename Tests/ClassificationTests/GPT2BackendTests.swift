import ArtifactKit
import GPT2
import TestSupport
import TrainingKit
import Classification
import XCTest

/// The split trunk (GPT2Trunk via GPT2Backend) against GPT2Model's own full forward/backward,
/// and the trainer's shortcuts (cache, trimming) on the real kernels, on a tiny GPT-2.
final class GPT2BackendTests: XCTestCase {
    static let config = GPT2Config(name: "tiny", vocabSize: 40, contextLength: 16, embDim: 16, nHeads: 2, nLayers: 3)
    static let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))

    static func parameters() -> [Float] {
        var g = SeededGenerator(seed: 11)
        var p = (0..<layout.totalCount).map { _ in g.uniform(-0.2, 0.2) }
        // LayerNorm weights near 1, as in a real model.
        for spec in layout.tensors where spec.name.hasSuffix("ln_1.weight") || spec.name.hasSuffix("ln_2.weight") || spec.name == "ln_f.weight" {
            for i in spec.range { p[i] += 1 }
        }
        return p
    }

    static func rows(count: Int, seed: UInt64) -> LabeledRows {
        var g = SeededGenerator(seed: seed)
        let S = 9
        var tokens: [Int32] = [], labels: [Int] = [], lengths: [Int] = []
        for _ in 0..<count {
            let len = Int(g.next() % UInt64(S)) + 1
            var row = (0..<len).map { _ in Int32(g.next() % 39) }
            labels.append(row.contains(3) ? 1 : 0)
            row += [Int32](repeating: 39, count: S - len)
            tokens += row
            lengths.append(len)
        }
        return LabeledRows(tokens: tokens, labels: labels, lengths: lengths, sequenceLength: S, padTokenID: 39, numClasses: 2)
    }

    /// Loss and gradients of one batch through our split (head and pooling in Training, trunk in
    /// GPT2Trunk) equal GPT2Model.forwardBackward's for the same trainable tensors.
    func testSplitTrunkMatchesFullForwardBackward() throws {
        let rows = Self.rows(count: 6, seed: 5)
        let batchRows = Array(0..<6)
        let cases: [(TrainableLayers, Pooling, TrainableSet, (Batch) -> ClassificationPosition)] = [
            (.lastBlock, Pooling(position: .last), .lastBlocks(1, Self.layout), { _ in .last }),
            (.lastTwoBlocks, Pooling(position: .flexible), .lastBlocks(2, Self.layout),
             { b in .perRow(b.pooled.map { $0.lowerBound }) }),
            (.lastBlock, Pooling(position: .first), .lastBlocks(1, Self.layout), { _ in .first }),
            (.lastBlock, Pooling(position: .flexible), .lastBlocks(1, Self.layout),
             { b in .perRow(b.pooled.map { $0.lowerBound }) }),
            (.lastBlock, Pooling(position: .last, averageEmbeddings: true), .lastBlocks(1, Self.layout),
             { b in .average(lengths: b.pooled.map { $0.count }) }),
            (.all, Pooling(position: .last), .all(Self.layout), { _ in .last }),
            (.lastLayer, Pooling(position: .last), .headOnly(Self.layout), { _ in .last }),
        ]
        for (trainable, pooling, set, position) in cases {
            for (trim, shortcut) in [(false, false), (true, false), (false, true), (true, true)] {
                let backend = try GPT2Backend(layout: Self.layout, parameters: Self.parameters())
                let model = try ClassifierModel(backend: backend, parameters: Self.parameters(), pooling: pooling,
                                                trainable: trainable, trimBatches: trim)
                // The last block at the pooled positions only (lastBlock with one position) or in full.
                model.selectedPositionShortcut = shortcut
                let split = DataSplit(name: "t", rows: rows)
                let ours = try model.computeGradients(rows: batchRows, of: split)

                let reference = try GPT2Model(layout: Self.layout, params: Self.parameters())
                let b = rows.batch(batchRows, pooling: pooling, trim: trim)
                let theirs = try reference.forwardBackward(tokens: b.tokens, batch: 6, seqLen: b.length,
                                                           objective: .classification(labels: b.labels.map { Int32($0) }, position: position(b)),
                                                           trainable: set)
                XCTAssertEqual(ours, theirs, accuracy: 1e-5, "\(trainable) \(pooling) trim \(trim) shortcut \(shortcut)")
                let refGrad = reference.gradients
                var maxDiff: Float = 0, maxRef: Float = 0
                for name in set.names {
                    for i in Self.layout.spec(named: name)!.range {
                        maxDiff = max(maxDiff, abs(model.gradients[i] - refGrad[i]))
                        maxRef = max(maxRef, abs(refGrad[i]))
                    }
                }
                XCTAssertGreaterThan(maxRef, 1e-4)
                XCTAssertLessThan(maxDiff, 1e-5 + 1e-4 * maxRef, "\(trainable) \(pooling) trim \(trim) shortcut \(shortcut)")
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
            let copied = try model.fillCache([splitA, splitB])
            XCTAssertEqual(copied, (a.rowCount - uniqueInA) + 4, "\(trainable) \(pooling)")
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

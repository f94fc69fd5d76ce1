import ArtifactKit
import GPT2
import TestSupport
import Classification
import TrainingKit
import XCTest

/// Central finite differences of the production classifier's loss (ClassifierModel over
/// GPT2Backend) against its analytic gradients, for every pooling and every kind of trainable
/// set, LoRA included: the check of the hand-written backward passes (GPT2Trunk's blocks, the
/// selected-position last block, ClassifierHead's pooling, head and adapter) that needs no
/// reference implementation.
final class ClassifierFiniteDifferenceTests: XCTestCase {
    /// Every tensor's range in the model's parameter vector: the layout's, then the adapters'.
    func tensorRanges(_ model: ClassifierModel) -> [(name: String, range: Range<Int>)] {
        let layout = model.backend.layout
        var out = layout.tensors.map { (name: $0.name, range: $0.range) }
        if let lora = model.backend.loraAdapters {
            out += lora.layout.tensors.map { t in
                (name: t.name, range: (layout.totalCount + t.offset)..<(layout.totalCount + t.offset + t.shape[0] * t.shape[1]))
            }
        }
        return out
    }

    /// For `samples` random entries of every tensor: d(loss)/d(entry) from `computeGradients`
    /// against (loss(p + h) - loss(p - h)) / 2h with h = 1e-2, where the loss is the batch's mean
    /// cross-entropy from `lossAndAccuracy` (the inference path); entries outside the trainable
    /// range must get exactly 0.
    func checkFiniteDifferences(_ model: ClassifierModel, rows: LabeledRows, samples: Int = 2,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let split = DataSplit(name: "fd", rows: rows)
        let batch = Array(0..<rows.rowCount)
        _ = try model.computeGradients(rows: batch, of: split)
        let analytic = model.gradients
        var rng = SeededGenerator(seed: 11)
        let h: Float = 1e-2
        var checked = 0
        for (name, range) in tensorRanges(model) {
            for _ in 0..<samples {
                let i = range.lowerBound + Int(rng.next() % UInt64(range.count))
                guard model.trainableRange.contains(i) else {
                    // With LoRA, ClassifierHead still forms the frozen base head's gradient (outside the
                    // trainable range, never applied); every other frozen tensor gets none.
                    if !(model.trainable == .lora && name.hasPrefix("out_head.")) {
                        XCTAssertEqual(analytic[i], 0, "frozen \(name) got a gradient", file: file, line: line)
                    }
                    continue
                }
                let original = model.parameters[i]
                func lossAt(_ delta: Float) throws -> Float {
                    model.modifyParameters(in: i..<(i + 1)) { $0[i] = original + delta }
                    defer { model.modifyParameters(in: i..<(i + 1)) { $0[i] = original } }
                    return Float(try model.lossAndAccuracy(batches: [batch], of: split).loss)
                }
                let numeric = (try lossAt(h) - lossAt(-h)) / (2 * h)
                XCTAssertEqual(analytic[i], numeric, accuracy: 2e-3 + 2e-2 * abs(numeric),
                               "\(name)[\(i - range.lowerBound)] analytic \(analytic[i]) numeric \(numeric)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 2 * samples, "entries checked", file: file, line: line)
    }

    func model(_ layout: ParameterLayout, _ trainable: TrainableLayers, _ pooling: Pooling, shortcut: Bool = true,
               lora: LoRAWeights? = nil) throws -> ClassifierModel {
        let base = GPT2BackendTests.parameters(layout)
        let backend = try GPT2Backend(layout: layout, parameters: base)
        if let lora { try backend.attachLoRA(lora) }
        let model = try ClassifierModel(backend: backend, parameters: base + (lora?.values ?? []), pooling: pooling,
                                        trainable: trainable)
        model.selectedPositionShortcut = shortcut
        return model
    }

    /// The book's setting: the last block, ln_f and the head, read at one position — through the
    /// selected-position last block (no keys or values) and through the full block.
    func testLastBlockGradientsMatchFiniteDifferences() throws {
        let rows = GPT2BackendTests.rows(count: 6, seed: 5)
        for pooling in [Pooling(position: .last), Pooling(position: .flexible), Pooling(position: .first)] {
            for shortcut in [true, false] {
                try checkFiniteDifferences(try model(GPT2BackendTests.layout, .lastBlock, pooling, shortcut: shortcut), rows: rows, samples: 3)
            }
        }
    }

    /// Every tensor trainable (embeddings included), without qkv bias, for every pooling; and the
    /// last two blocks with averaged embeddings.
    func testAllPoolingVariantsMatchFiniteDifferences() throws {
        let rows = GPT2BackendTests.rows(count: 6, seed: 5)
        let config = GPT2Config(name: "tiny", vocabSize: 40, contextLength: 16, embDim: 16, nHeads: 2, nLayers: 3, qkvBias: false)
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))
        for pooling in [Pooling(position: .last), Pooling(position: .first), Pooling(position: .flexible),
                        Pooling(position: .last, averageEmbeddings: true)] {
            try checkFiniteDifferences(try model(layout, .all, pooling), rows: rows)
        }
        try checkFiniteDifferences(try model(GPT2BackendTests.layout, .lastTwoBlocks, Pooling(position: .last, averageEmbeddings: true)),
                                   rows: rows)
        try checkFiniteDifferences(try model(GPT2BackendTests.layout, .lastLayer, Pooling(position: .flexible)), rows: rows, samples: 4)
    }

    /// LoRA (adapters on every Linear, the head's included, everything else frozen; no cache) for
    /// every pooling. The `last` case is also checked against the book's PyTorch LoRA model
    /// (ClassifierParityTests).
    func testLoRAGradientsMatchFiniteDifferences() throws {
        let rows = GPT2BackendTests.rows(count: 6, seed: 5)
        let lora = try LoRATrainingTests.adapters()
        for pooling in [Pooling(position: .last), Pooling(position: .flexible), Pooling(position: .last, averageEmbeddings: true)] {
            let m = try model(GPT2BackendTests.layout, .lora, pooling, lora: lora)
            XCTAssertFalse(m.cacheIsExact, "LoRA changes every block: no frozen-trunk cache")
            XCTAssertEqual(m.trainableRange, GPT2BackendTests.layout.totalCount..<(GPT2BackendTests.layout.totalCount + lora.layout.totalCount))
            try checkFiniteDifferences(m, rows: rows)
            // The head's adapter is part of it (its gradient is non-zero).
            let head = lora.layout.adapters(of: "out_head")[0]
            let offset = GPT2BackendTests.layout.totalCount
            XCTAssertTrue(m.gradients[(offset + head.aOffset)..<(offset + head.aOffset + head.count)].contains { $0 != 0 }, "\(pooling)")
        }
    }
}

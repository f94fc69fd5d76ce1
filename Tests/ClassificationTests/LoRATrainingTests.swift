import ArtifactKit
import GPT2
import GPT2Weights
import TestSupport
import TrainingKit
import Classification
import XCTest

/// LoRA in the trainers: the classifier's split path (trunk + head in Training) against the
/// parity-tested GPT2Model path, resume-equals-uninterrupted for both trainers, checkpoints that
/// evaluate, and the frozen-trunk cache switched off.
final class LoRATrainingTests: XCTestCase {
    static let layout = GPT2BackendTests.layout

    /// Adapters with every value random (B too, so that every gradient is non-zero).
    static func adapters(rank: Int = 3, alpha: Float = 2) throws -> LoRAWeights {
        let l = try LoRALayout(layout: layout, rank: rank)
        var g = SeededGenerator(seed: 21)
        return try LoRAWeights(settings: LoRASettings(rank: rank, alpha: alpha), layout: l,
                               values: (0..<l.totalCount).map { _ in g.uniform(-0.3, 0.3) })
    }

    /// The classifier's LoRA path (GPT2Trunk blocks + the head's adapter in ClassifierHead) gives
    /// the loss and adapter gradients of GPT2Model.forwardBackward, which the PyTorch fixture checks.
    func testClassifierPathMatchesCoreForwardBackward() throws {
        let rows = GPT2BackendTests.rows(count: 6, seed: 5)
        let batchRows = Array(0..<6)
        let lora = try Self.adapters()
        let base = GPT2BackendTests.parameters()
        for (pooling, position) in [(Pooling(position: .last), { (_: Batch) in ClassificationPosition.last }),
                                    (Pooling(position: .flexible), { (b: Batch) in .perRow(b.pooled.map { $0.lowerBound }) }),
                                    (Pooling(position: .last, averageEmbeddings: true), { (b: Batch) in .average(lengths: b.pooled.map { $0.count }) })] {
            let backend = try GPT2Backend(layout: Self.layout, parameters: base)
            try backend.attachLoRA(lora)
            let model = try ClassifierModel(backend: backend, parameters: base + lora.values, pooling: pooling, trainable: .lora)
            XCTAssertFalse(model.cacheIsExact, "LoRA changes every block: no frozen-trunk cache")
            XCTAssertEqual(model.trainableRange, Self.layout.totalCount..<(Self.layout.totalCount + lora.layout.totalCount))
            let split = DataSplit(name: "t", rows: rows)
            let ours = try model.computeGradients(rows: batchRows, of: split)

            let reference = try GPT2Model(layout: Self.layout, params: base)
            try reference.attachLoRA(lora)
            let b = rows.batch(batchRows, pooling: pooling, trim: true)
            let theirs = try reference.forwardBackward(tokens: b.tokens, batch: 6, seqLen: b.length,
                                                       objective: .classification(labels: b.labels.map { Int32($0) }, position: position(b)),
                                                       trainable: .loraAdapters)
            XCTAssertEqual(ours, theirs, accuracy: 1e-5, "\(pooling)")
            let refGrad = reference.loraAdapters!.gradients
            let ourGrad = Array(model.gradients[model.trainableRange])
            var maxDiff: Float = 0, maxRef: Float = 0
            for (a, r) in zip(ourGrad, refGrad) {
                maxDiff = max(maxDiff, abs(a - r))
                maxRef = max(maxRef, abs(r))
            }
            XCTAssertGreaterThan(maxRef, 1e-3)
            XCTAssertLessThan(maxDiff, 1e-5 + 1e-4 * maxRef, "\(pooling)")
            // The head's adapter is part of it (its gradient is non-zero).
            let head = lora.layout.adapters(of: "out_head")[0]
            XCTAssertTrue(ourGrad[head.aOffset..<(head.aOffset + head.count)].contains { $0 != 0 })
        }
    }

    func testClassifierStageResumesExactlyAndEvaluates() throws {
        let dir = try TestPaths.makeTempDir("lora-stage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try StageTests.writePrepared(in: dir)
        func options(epochs: Int) -> ClassifierTrainOptions {
            var o = StageTests.options(prepared, in: dir, epochs: epochs)
            o.settings.trainableLayers = .lora
            o.settings.loraRank = 2
            o.settings.loraAlpha = 4
            return o
        }
        var o = options(epochs: 3)
        o.stopAfterSteps = 7
        XCTAssertTrue(try ClassifierTrainStage.run(o, makeBackend: StageTests.backend).outcome.interrupted)
        o.stopAfterSteps = nil
        o.resume = .required
        let resumed = try ClassifierTrainStage.run(o, makeBackend: StageTests.backend)
        let modelURL = dir.appendingPathComponent("train/model.safetensors")
        let resumedCkpt = try loadCheckpointWithLoRA(from: modelURL)
        let whole = try ClassifierTrainStage.run(options(epochs: 3), makeBackend: StageTests.backend)
        let wholeCkpt = try loadCheckpointWithLoRA(from: modelURL)
        XCTAssertEqual(resumed.outcome.log.map(\.trainLoss), whole.outcome.log.map(\.trainLoss))
        XCTAssertEqual(resumed.outcome.log.map(\.valAccuracy), whole.outcome.log.map(\.valAccuracy))
        XCTAssertEqual(resumedCkpt.lora, wholeCkpt.lora)
        XCTAssertEqual(resumedCkpt.params, wholeCkpt.params)

        // Only the adapters trained: the base weights are the random start, the adapters moved.
        let settings = options(epochs: 3).settings
        let start = try BaseWeights.load(settings, layout: wholeCkpt.layout).parameters
        XCTAssertEqual(wholeCkpt.params, start)
        let lora = try XCTUnwrap(wholeCkpt.lora)
        XCTAssertEqual(lora.settings, LoRASettings(rank: 2, alpha: 4))
        XCTAssertNotEqual(lora.values, try LoRAWeights.initial(for: wholeCkpt.layout, settings: lora.settings, seed: settings.seed).values)
        let manifest = try XCTUnwrap(whole.manifest)
        XCTAssertEqual(manifest.stats["trainable_parameters"], .int(lora.layout.totalCount))
        XCTAssertEqual(manifest.stats["frozen_trunk_cached"], false)
        XCTAssertEqual(manifest.params["lora_rank"], 2)
        XCTAssertEqual(wholeCkpt.metadata["trainable"], "lora")

        // evaluate reads the LoRA checkpoint (merged) and reproduces the trainer's last validation accuracy.
        var eo = ClassifierEvaluateOptions(model: dir.appendingPathComponent("train"), prepared: prepared,
                                 output: dir.appendingPathComponent("eval"))
        eo.pngConverter = "no-such-converter-for-tests"
        let r = try ClassifierEvaluateStage.run(eo, makeBackend: StageTests.backend)
        XCTAssertEqual(r.metrics["validation"]?.rows, 6)
        XCTAssertEqual(r.metrics["validation"]?.accuracy ?? -1, whole.outcome.log.last!.valAccuracy!, accuracy: 1e-9)
        let classifier = try TextClassifier(modelDirectory: dir.appendingPathComponent("train"), makeBackend: StageTests.backend)
        XCTAssertEqual(try classifier.probabilities(tokens: [1, 2, 3]).count, 2)
    }
}

import ArtifactKit
import GPT2
import GPT2Weights
import TestSupport
import TrainingKit
import Classification
import XCTest

/// LoRA in the classifier's trainer: resume-equals-uninterrupted, checkpoints that evaluate, and
/// the frozen-trunk cache switched off. (The LoRA path's gradients: ClassifierParityTests against
/// the book's PyTorch LoRA model, ClassifierFiniteDifferenceTests for every pooling.)
final class LoRATrainingTests: XCTestCase {
    static let layout = GPT2BackendTests.layout

    /// Adapters with every value random (B too, so that every gradient is non-zero).
    static func adapters(rank: Int = 3, alpha: Float = 2) throws -> LoRAWeights {
        let l = try LoRALayout(layout: layout, rank: rank)
        var g = SeededGenerator(seed: 21)
        return try LoRAWeights(settings: LoRASettings(rank: rank, alpha: alpha), layout: l,
                               values: (0..<l.totalCount).map { _ in g.uniform(-0.3, 0.3) })
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
        let start = try BaseWeights.load(settings.base, seed: settings.seed, layout: wholeCkpt.layout).parameters
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

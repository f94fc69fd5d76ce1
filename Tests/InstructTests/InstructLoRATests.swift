import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import Instruct
import TestSupport
import XCTest

final class InstructLoRATests: XCTestCase {
    func testInstructResumeEqualsUninterruptedWithLoRA() throws {
        let dir = try TestPaths.makeTempDir("lora-instruct")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        var s = TinyInstruct.settings(epochs: 2)
        s.lora = true
        s.loraRank = 2
        s.loraAlpha = 4
        s.learningRate = 1e-2
        let whole = dir.appendingPathComponent("whole"), parts = dir.appendingPathComponent("parts")
        let a = try InstructTrainStage.run(TinyInstruct.options(prepared, whole, s))
        var o = TinyInstruct.options(prepared, parts, s)
        o.stopAfterSteps = 8
        XCTAssertTrue(try InstructTrainStage.run(o).outcome.interrupted)
        o.stopAfterSteps = nil
        o.resume = .required
        let b = try InstructTrainStage.run(o)
        XCTAssertEqual(b.outcome.steps, 12)
        XCTAssertEqual(a.outcome.log.map(\.trainLoss), b.outcome.log.map(\.trainLoss))
        XCTAssertEqual(a.outcome.log.map(\.valLoss), b.outcome.log.map(\.valLoss))
        let ca = try loadCheckpointWithLoRA(from: whole.appendingPathComponent("model.safetensors"))
        let cb = try loadCheckpointWithLoRA(from: parts.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ca.lora, cb.lora)
        XCTAssertEqual(ca.params, cb.params)
        // The base stayed the random start (train instruct's init scheme); the adapters (rank 2, the tied head's included) trained.
        XCTAssertEqual(ca.params, randomWeights(layout: ca.layout, seed: s.seed, scheme: s.initScheme))
        let lora = try XCTUnwrap(ca.lora)
        let head = lora.layout.adapters(of: "lm_head")[0]
        XCTAssertEqual(head.outDim, 50257)
        XCTAssertTrue(lora.values[head.bOffset..<(head.aOffset + head.count)].contains { $0 != 0 })
        XCTAssertEqual(a.manifest?.stats["trainable_parameters"], .int(lora.layout.totalCount))
        let evals = a.outcome.log.filter { $0.kind == "eval" }
        XCTAssertLessThan(evals.last!.trainLoss!, evals.first!.trainLoss!, "\(evals.map { $0.trainLoss! })")

        // A resume state from full fine-tuning does not fit a LoRA run.
        var full = TinyInstruct.settings(epochs: 2)
        full.maxSteps = 1
        _ = try InstructTrainStage.run(TinyInstruct.options(prepared, dir.appendingPathComponent("full"), full))
        var mixed = TinyInstruct.options(prepared, dir.appendingPathComponent("full"), s)
        mixed.resume = .required
        XCTAssertThrowsError(try InstructTrainStage.run(mixed))
    }
}

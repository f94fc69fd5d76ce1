import Foundation
import TestSupport
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// Parity with Hugging Face transformers / PyTorch on the golden files written by
/// tools/reference/gpt2_parity.py (logits, loss, every gradient, a 10-step AdamW trajectory).
final class ParityTests: XCTestCase {
    struct Case {
        let model: GPT2Model
        let golden: SafetensorsFile
        let batch: Int
        let seqLen: Int
        let tokens: [Int32]
    }

    func loadCase(_ name: String) throws -> Case {
        let f = try ParityFixture(folder: "gpt2-parity", name: name)
        return Case(model: try GPT2Model(layout: f.layout, params: f.params), golden: f.golden, batch: f.batch,
                    seqLen: f.seqLen, tokens: f.tokens)
    }

    func testLanguageModelMatchesTransformers() throws {
        let c = try loadCase("lm")
        let targets = try c.golden.int64s("targets").map { Int32($0) }
        let objective = Objective.languageModel(targets: targets)
        let all = TrainableSet.all(c.model.layout)

        let logits = try c.model.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen)
        compareParity("parity", logits, try c.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")

        let loss = try c.model.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, objective: objective, trainable: all)
        let expectedLoss = try c.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        for spec in c.model.layout.tensors {
            compareParity("parity", try XCTUnwrap(c.model.gradient(spec.name)), try c.golden.floats("grad." + spec.name),
                    rel: 1e-3, absMax: 1e-4, "grad \(spec.name)")
        }
        try checkTrajectory(c, objective: objective, trainable: all,
                            finals: ["ln_f.weight", "h.1.attn.c_attn.weight"])
    }

    func testChapter6ClassifierMatchesTorch() throws {
        let c = try loadCase("cls")
        let labels = try c.golden.int64s("labels").map { Int32($0) }
        let objective = Objective.classification(labels: labels, position: .last)
        let trainable = TrainableSet.lastBlocks(1, c.model.layout)
        XCTAssertEqual(trainable.names, Set(c.model.layout.tensors.map(\.name).filter {
            $0.hasPrefix("h.2.") || $0.hasPrefix("ln_f.") || $0.hasPrefix("out_head.")
        }))

        let logits = try c.model.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last)
        compareParity("parity", logits, try c.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")

        let loss = try c.model.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, objective: objective,
                                               trainable: trainable)
        let expectedLoss = try c.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        for spec in c.model.layout.tensors {
            let grad = try XCTUnwrap(c.model.gradient(spec.name))
            if trainable.contains(spec.name) {
                compareParity("parity", grad, try c.golden.floats("grad." + spec.name), rel: 1e-3, absMax: 1e-4, "grad \(spec.name)")
            } else {
                XCTAssertNil(c.golden.info("grad." + spec.name), "torch trained \(spec.name)")
                XCTAssertTrue(grad.allSatisfy { $0 == 0 }, "frozen \(spec.name) got a gradient")
            }
        }
        try checkTrajectory(c, objective: objective, trainable: trainable, finals: ["out_head.weight", "h.2.mlp.c_fc.weight"])
    }

    /// 10 AdamW steps (lr 1e-3, weight decay 0.1) from the initial weights, as in the script.
    func checkTrajectory(_ c: Case, objective: Objective, trainable: TrainableSet, finals: [String],
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let initial = c.model.parameters
        defer { try? c.model.setParameters(initial) }
        let opt = AdamW(parameterCount: c.model.layout.totalCount, learningRate: 1e-3, weightDecay: 0.1)
        var losses: [Float] = []
        for _ in 0..<10 {
            c.model.zeroGradients()
            losses.append(try c.model.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen,
                                                      objective: objective, trainable: trainable))
            try opt.update(c.model, trainable: trainable)
        }
        let expected = try c.golden.floats("trajectory")
        for (i, (a, e)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-4 * max(abs(e), 1), "loss at step \(i + 1): \(a) vs torch \(e)", file: file, line: line)
        }
        for name in finals {
            compareParity("parity", try XCTUnwrap(c.model.tensor(name)), try c.golden.floats("after." + name), rel: 1e-4, absMax: 1e-4,
                    "\(name) after 10 steps", file: file, line: line)
        }
    }
}

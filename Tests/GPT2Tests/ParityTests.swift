import Foundation
import GPT2TestSupport
import TestSupport
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// Parity of the language model with Hugging Face transformers / PyTorch on the golden files
/// written by tools/reference/gpt2_parity.py (logits, loss, every gradient, a 10-step AdamW
/// trajectory). The chapter-6 classifier case of the same script runs through the production
/// classifier path: ClassificationTests/ClassifierParityTests.
final class ParityTests: XCTestCase {
    func testLanguageModelMatchesTransformers() throws {
        let f = try ParityFixture(folder: "gpt2-parity", name: "lm")
        let model = try f.model()
        let targets = try f.golden.int64s("targets").map { Int32($0) }
        let objective = Objective.languageModel(targets: targets)
        let all = TrainableSet.all(model.layout)

        let logits = try model.logits(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen)
        compareParity("parity", logits, try f.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")

        let loss = try model.forwardBackward(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen, objective: objective, trainable: all)
        let expectedLoss = try f.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        for spec in model.layout.tensors {
            compareParity("parity", try XCTUnwrap(model.gradient(spec.name)), try f.golden.floats("grad." + spec.name),
                          rel: 1e-3, absMax: 1e-4, "grad \(spec.name)")
        }

        // 10 AdamW steps (lr 1e-3, weight decay 0.1) from the initial weights, as in the script.
        let opt = AdamW(parameterCount: model.layout.totalCount, learningRate: 1e-3, weightDecay: 0.1)
        var losses: [Float] = []
        for _ in 0..<10 {
            model.zeroGradients()
            losses.append(try model.forwardBackward(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen,
                                                    objective: objective, trainable: all))
            try opt.update(model, trainable: all)
        }
        let expected = try f.golden.floats("trajectory")
        XCTAssertEqual(expected.count, 10)
        for (i, (a, e)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-4 * max(abs(e), 1), "loss at step \(i + 1): \(a) vs torch \(e)")
        }
        for name in ["ln_f.weight", "h.1.attn.c_attn.weight"] {
            compareParity("parity", try XCTUnwrap(model.tensor(name)), try f.golden.floats("after." + name), rel: 1e-4, absMax: 1e-4,
                          "\(name) after 10 steps")
        }
    }
}

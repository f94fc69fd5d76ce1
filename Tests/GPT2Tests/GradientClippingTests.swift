import ArtifactKit
import Foundation
import TestSupport
import XCTest
@testable import GPT2

/// The clipping cases of `Tests/Fixtures/training-controls/reference.json`
/// (tools/reference/make_training_controls_fixture.py: torch.nn.utils.clip_grad_norm_).
private struct ClippingReference: Decodable {
    struct Case: Decodable {
        var max_norm: Float
        var grads: [[Float]]
        var norm: Float
        var clipped: [[Float]]
    }

    var torch: String
    var clipping: [Case]
}

final class GradientClippingTests: XCTestCase {
    /// The norm before clipping and the clipped gradients equal torch's, to 1e-6 relative, for
    /// sets above max_norm and one below it (left unchanged, bit for bit).
    func testClippingEqualsTorch() throws {
        let url = TestPaths.fixtures.appendingPathComponent("training-controls/reference.json")
        let reference = try JSONDecoder().decode(ClippingReference.self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(reference.clipping.count, 4)
        var sawUnclipped = false
        for (n, c) in reference.clipping.enumerated() {
            // The tensors side by side in one buffer, with a gap that must not be touched.
            var flat: [Float] = [], ranges: [Range<Int>] = []
            for g in c.grads {
                flat.append(42)
                ranges.append(flat.count..<(flat.count + g.count))
                flat += g
            }
            let before = flat
            let norm = GradientClipping.clip(&flat, ranges: ranges, maxNorm: c.max_norm)
            XCTAssertEqual(norm, c.norm, accuracy: 1e-6 * c.norm, "case \(n)")
            for (r, expected) in zip(ranges, c.clipped) {
                XCTAssertEqual(flat[r.lowerBound - 1], 42, "outside the ranges")
                for (got, want) in zip(flat[r], expected) { XCTAssertEqual(got, want, accuracy: 1e-6 * max(abs(want), 1e-3), "case \(n)") }
            }
            if c.norm < c.max_norm {
                sawUnclipped = true
                XCTAssertEqual(flat, before, "below max_norm nothing changes")
            }
            // Measuring only changes nothing.
            var copy = before
            XCTAssertEqual(GradientClipping.clip(&copy, ranges: ranges, maxNorm: nil), norm)
            XCTAssertEqual(copy, before)
        }
        XCTAssertTrue(sawUnclipped)
    }

    /// Long buffers (chunked double accumulation) give the norm of a double-precision sum.
    func testNormOfALongBuffer() {
        var g = SeededGenerator(seed: 5)
        var x = (0..<100_003).map { _ in g.uniform(-1, 1) }
        let exact = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(Double(GradientClipping.clip(&x, ranges: [0..<x.count], maxNorm: nil)), exact, accuracy: 1e-6 * exact)
        let norm = GradientClipping.clip(&x, ranges: [0..<x.count], maxNorm: 2)
        XCTAssertEqual(Double(norm), exact, accuracy: 1e-6 * exact)
        XCTAssertEqual(Double(GradientClipping.clip(&x, ranges: [0..<x.count], maxNorm: nil)), 2, accuracy: 1e-5)
    }

    /// The model's trainable gradients (a subset of tensors, or LoRA adapters) are what is measured and clipped.
    func testModelClipsOnlyTheTrainableGradients() throws {
        let model = try TinyModel.model()
        let trainable = TrainableSet.lastBlocks(1, model.layout)
        model.zeroGradients()
        try model.forwardBackward(tokens: TinyModel.tokens(12), batch: 2, seqLen: 6,
                                  objective: .languageModel(targets: TinyModel.tokens(12, seed: 9)), trainable: trainable)
        let before = model.gradients
        let ranges = model.layout.tensors.filter { trainable.contains($0.name) }.map(\.range)
        let expected = ranges.flatMap { before[$0] }.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let norm = try model.clipGradients(trainable: trainable, maxNorm: Float(expected / 4))
        XCTAssertEqual(Double(norm), expected, accuracy: 1e-6 * expected)
        let after = model.gradients
        let clippedNorm = ranges.flatMap { after[$0] }.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(clippedNorm, expected / 4, accuracy: 1e-5 * expected)
    }
}

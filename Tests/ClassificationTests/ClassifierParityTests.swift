import ArtifactKit
import Classification
import Foundation
import GPT2TestSupport
import GPT2Weights
import TestSupport
import TrainingKit
import XCTest
@testable import GPT2

/// The chapter-6 classifier on the production path (ClassifierModel over GPT2Backend: GPT2Trunk,
/// the selected-position last block, ClassifierHead) against PyTorch: the `cls` golden files of
/// tools/reference/gpt2_parity.py (Hugging Face GPT2Model + Linear(C, 2) on the last position;
/// the last block, ln_f and the head trainable) and of tools/reference/lora_parity.py (the book's
/// GPTModel with `replace_linear_with_lora`, rank 4, alpha 2, random B).
final class ClassifierParityTests: XCTestCase {
    /// The fixture's rows as classification data: every row all real tokens (no padding), so
    /// `last` pooling reads position seqLen - 1, the script's `[:, -1, :]`.
    func split(_ f: ParityFixture) throws -> DataSplit {
        let labels = try f.golden.int64s("labels").map { Int($0) }
        return DataSplit(name: "parity", rows: LabeledRows(tokens: f.tokens, labels: labels,
                                                           lengths: Array(repeating: f.seqLen, count: f.batch),
                                                           sequenceLength: f.seqLen, padTokenID: 0, numClasses: 2))
    }

    func classifier(_ f: ParityFixture, _ trainable: TrainableLayers, lora: LoRAWeights? = nil, trim: Bool = true,
                    shortcut: Bool = true) throws -> ClassifierModel {
        let backend = try GPT2Backend(layout: f.layout, parameters: f.params)
        if let lora { try backend.attachLoRA(lora) }
        let model = try ClassifierModel(backend: backend, parameters: f.params + (lora?.values ?? []), pooling: Pooling(position: .last),
                                        trainable: trainable, trimBatches: trim)
        model.selectedPositionShortcut = shortcut
        return model
    }

    /// Logits of every row and the loss and gradients of one batch of all rows.
    func logitsLossAndGradients(_ model: ClassifierModel, _ split: DataSplit) throws -> ([Float], Float, [Float]) {
        let rows = Array(0..<split.rows.rowCount)
        let logits = try model.logits(rows: rows, of: split).flatMap { $0 }
        let loss = try model.computeGradients(rows: rows, of: split)
        return (logits, loss, model.gradients)
    }

    /// `steps` AdamW steps (lr 1e-3, weight decay 0.1, as the scripts) over the trainable range,
    /// as ClassifierTrainer takes them: the loss before each step.
    func trajectory(_ model: ClassifierModel, _ split: DataSplit, steps: Int) throws -> [Float] {
        let optimizer = AdamW(parameterCount: model.trainableRange.count, learningRate: 1e-3, weightDecay: 0.1)
        return try (0..<steps).map { _ in
            let loss = try model.computeGradients(rows: Array(0..<split.rows.rowCount), of: split)
            model.modifyParameters(in: model.trainableRange) {
                optimizer.update(parameters: &$0, gradients: model.gradients, range: model.trainableRange)
            }
            return loss
        }
    }

    func checkTrajectory(_ losses: [Float], _ f: ParityFixture, steps: Int, _ what: String,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try f.golden.floats("trajectory")
        XCTAssertEqual(expected.count, steps, file: file, line: line)
        for (i, (a, e)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-4 * max(abs(e), 1), "\(what): loss at step \(i + 1): \(a) vs torch \(e)", file: file, line: line)
        }
    }

    /// The book's chapter-6 setting, with each of the frozen-trunk cache and the selected-position
    /// last block on and off: logits and loss (1e-4 relative), the gradient of every trained tensor
    /// (1e-3 norm-wise relative, 1e-4 max abs), frozen tensors exactly 0, the 10-step AdamW loss
    /// trajectory (1e-4) and two tensors after it (1e-4).
    func testChapter6ClassifierMatchesTorch() throws {
        let f = try ParityFixture(folder: "gpt2-parity", name: "cls")
        let L = f.layout.config.nLayers
        let torchTrained = Set(f.layout.tensors.map(\.name).filter {
            $0.hasPrefix("h.\(L - 1).") || $0.hasPrefix("ln_f.") || $0.hasPrefix("out_head.")
        })
        for (cache, shortcut) in [(false, false), (true, false), (false, true), (true, true)] {
            let what = "cache \(cache) shortcut \(shortcut)"
            let model = try classifier(f, .lastBlock, shortcut: shortcut)
            let split = try split(f)
            if cache { try model.fillCache(split) }
            XCTAssertEqual(split.isCached, cache, what)
            XCTAssertEqual(Set(f.layout.tensors.filter { model.trainableRange.contains($0.offset) }.map(\.name)), torchTrained, what)

            let (logits, loss, grads) = try logitsLossAndGradients(model, split)
            compareParity("parity cls \(what)", logits, try f.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")
            let expectedLoss = try f.golden.floats("loss")[0]
            XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss), what)
            for spec in f.layout.tensors {
                let grad = Array(grads[spec.range])
                if torchTrained.contains(spec.name) {
                    compareParity("parity cls \(what)", grad, try f.golden.floats("grad." + spec.name), rel: 1e-3, absMax: 1e-4,
                                  "grad \(spec.name)")
                } else {
                    XCTAssertNil(f.golden.info("grad." + spec.name), "torch trained \(spec.name)")
                    XCTAssertTrue(grad.allSatisfy { $0 == 0 }, "frozen \(spec.name) got a gradient (\(what))")
                }
            }
            try checkTrajectory(try trajectory(model, split, steps: 10), f, steps: 10, what)
            for name in ["out_head.weight", "h.\(L - 1).mlp.c_fc.weight"] {
                let spec = try XCTUnwrap(f.layout.spec(named: name))
                compareParity("parity cls \(what)", Array(model.parameters[spec.range]), try f.golden.floats("after." + name),
                              rel: 1e-4, absMax: 1e-4, "\(name) after 10 steps")
            }
        }
    }

    /// With more of the model trainable (every tensor, or the last two blocks) and every batch at
    /// full length, the tensors torch trained still get torch's gradients: the gradient of a tensor
    /// does not depend on what else trains. The other gradients are non-zero where torch has none.
    func testWiderTrainableSetsGiveTorchsGradients() throws {
        let f = try ParityFixture(folder: "gpt2-parity", name: "cls")
        for trainable in [TrainableLayers.all, .lastTwoBlocks] {
            let model = try classifier(f, trainable, trim: false, shortcut: false)
            let (logits, loss, grads) = try logitsLossAndGradients(model, try split(f))
            compareParity("parity cls \(trainable)", logits, try f.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")
            let expectedLoss = try f.golden.floats("loss")[0]
            XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss), "\(trainable)")
            for spec in f.layout.tensors where model.trainableRange.contains(spec.offset) {
                let grad = Array(grads[spec.range])
                if f.golden.info("grad." + spec.name) != nil {
                    compareParity("parity cls \(trainable)", grad, try f.golden.floats("grad." + spec.name), rel: 1e-3, absMax: 1e-4,
                                  "grad \(spec.name)")
                } else {
                    XCTAssertTrue(grad.contains { $0 != 0 }, "\(trainable): \(spec.name) trains but got no gradient")
                }
            }
        }
    }

    /// LoRA on every Linear, the head's included (the path `train` takes with trainable_layers
    /// lora: no cache, the full blocks with their adapters): logits and loss (1e-4), every adapter
    /// gradient (1e-3 relative, 1e-4 abs), a 5-step AdamW trajectory (1e-4) and two adapters after
    /// it (1e-4); the base weights unchanged and no gradient buffer ever allocated for them.
    func testClassifierMatchesBookLoRA() throws {
        let f = try ParityFixture(folder: "lora-parity", name: "cls")
        let lora = try f.loraWeights()
        let model = try classifier(f, .lora, lora: lora)
        let split = try split(f)
        let (logits, loss, grads) = try logitsLossAndGradients(model, split)
        compareParity("lora parity cls", logits, try f.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")
        let expectedLoss = try f.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        let adapterGrads = Array(grads[model.trainableRange])
        XCTAssertEqual(adapterGrads.count, lora.layout.totalCount)
        for t in lora.layout.tensors {
            compareParity("lora parity cls", try ParityFixture.adapterTensor(lora.layout, adapterGrads, t.name),
                          try f.golden.floats("grad." + t.name), rel: 1e-3, absMax: 1e-4, "grad \(t.name)")
        }
        let backend = try XCTUnwrap(model.backend as? GPT2Backend)
        XCTAssertNil(backend.model.gradBuffer, "a gradient buffer for the frozen base weights")

        try checkTrajectory(try trajectory(model, split, steps: 5), f, steps: 5, "lora")
        let adapters = Array(model.parameters[model.trainableRange])
        for name in ["out_head.lora_B", "h.0.attn.c_attn.k.lora_A"] {
            compareParity("lora parity cls", try ParityFixture.adapterTensor(lora.layout, adapters, name),
                          try f.golden.floats("after." + name), rel: 1e-4, absMax: 1e-4, "\(name) after 5 steps")
        }
        XCTAssertEqual(Array(model.parameters[..<f.layout.totalCount]), f.params, "the base weights changed")
        XCTAssertNil(backend.model.gradBuffer)
    }

    /// W' = W + alpha A B in the weights (what `evaluate` loads from a LoRA checkpoint) computes the
    /// same classifier as the adapters at run time (1e-5); fresh adapters (B = 0) change nothing,
    /// bit for bit.
    func testMergedWeightsEqualAdapters() throws {
        let f = try ParityFixture(folder: "lora-parity", name: "cls")
        let lora = try f.loraWeights()
        let split = try split(f)
        let rows = Array(0..<f.batch)
        let adapted = try classifier(f, .lora, lora: lora).logits(rows: rows, of: split).flatMap { $0 }
        let merged = try lora.merged(into: f.params, layout: f.layout)
        let plain = try ClassifierModel(backend: try GPT2Backend(layout: f.layout, parameters: merged), parameters: merged,
                                        pooling: Pooling(position: .last), trainable: .lastBlock)
        compareParity("lora parity cls", try plain.logits(rows: rows, of: split).flatMap { $0 }, adapted, rel: 1e-5, absMax: 1e-5,
                      "merged vs adapters")

        let fresh = try LoRAWeights.initial(for: f.layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123)
        let before = try classifier(f, .all).logits(rows: rows, of: split).flatMap { $0 }
        XCTAssertEqual(try classifier(f, .lora, lora: fresh).logits(rows: rows, of: split).flatMap { $0 }, before)
    }
}

import ArtifactKit
import Foundation
import Quantization
import XCTest
@testable import GPT2
@testable import GPT2Weights

/// A model over a quantized base computes what a float32 model computes whose Linear weights are
/// the dequantized values: the quantized kernels change how the weights are stored and read,
/// never the arithmetic they stand for. Checked for logits, the LoRA gradients (through the
/// input gradient of the quantized layers), greedy generation and the refusal to train a
/// quantized tensor.
final class QuantizedBaseTests: XCTestCase {
    let config = GPT2Config(name: "q-tiny", vocabSize: 300, contextLength: 32, embDim: 128, nHeads: 4, nLayers: 2)

    /// A model with random weights and random (non-zero) adapters; `quantized` quantizes its base.
    func model(_ type: QuantizationType?) throws -> GPT2Model {
        let layout = ParameterLayout(config: config, head: .languageModel)
        let m = try GPT2Model(layout: layout, params: randomWeights(layout: layout, seed: 7))
        var lora = try LoRAWeights.initial(for: layout, settings: LoRASettings(rank: 4, alpha: 8), seed: 3)
        var rng = SeededGenerator(seed: 11)
        lora = try LoRAWeights(settings: lora.settings, layout: lora.layout,
                               values: lora.values.map { _ in Float.random(in: -0.05...0.05, using: &rng) })
        try m.attachLoRA(lora)
        if let type { _ = try m.quantizeBase(type) }
        return m
    }

    /// The float32 twin of a quantized model: its dequantized weights written back in [in, out].
    func dequantizedTwin(of q: GPT2Model) throws -> GPT2Model {
        var params = try model(nil).parameters
        for (name, linear) in q.quantizedBaseWeights!.linears {
            var rowsOut = [Float](repeating: 0, count: linear.rows * linear.cols)
            linear.dequantize(rows: 0..<linear.rows, into: &rowsOut)
            let s = q.layout.spec(named: name)!
            if name == quantizedEmbeddingName {   // [V, C] is already the head's [out, in]
                for k in rowsOut.indices { params[s.offset + k] = rowsOut[k] }
                continue
            }
            for o in 0..<linear.rows { for i in 0..<linear.cols { params[s.offset + i * linear.rows + o] = rowsOut[o * linear.cols + i] } }
        }
        let twin = try GPT2Model(layout: q.layout, params: params)
        try twin.attachLoRA(q.loraAdapters!.weights)
        return twin
    }

    let tokens: [Int32] = (0..<2 * 12).map { Int32(($0 * 37 + 5) % 300) }

    func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    func testLogitsAndLoRAGradientsEqualTheDequantizedModel() throws {
        for type in QuantizationType.allCases {
            let q = try model(type), twin = try dequantizedTwin(of: q)
            let lq = try q.logits(tokens: tokens, batch: 2, seqLen: 12)
            let lt = try twin.logits(tokens: tokens, batch: 2, seqLen: 12)
            XCTAssertLessThan(maxRelativeDifference(lq, lt), 1e-5, "\(type) logits")
            let objective = Objective.languageModel(targets: tokens.map { ($0 + 1) % 300 })
            let lossQ = try q.forwardBackward(tokens: tokens, batch: 2, seqLen: 12, objective: objective, trainable: .loraAdapters)
            let lossT = try twin.forwardBackward(tokens: tokens, batch: 2, seqLen: 12, objective: objective, trainable: .loraAdapters)
            XCTAssertEqual(lossQ, lossT, accuracy: 1e-5 * abs(lossT), "\(type) loss")
            XCTAssertLessThan(maxRelativeDifference(q.loraAdapters!.gradients, twin.loraAdapters!.gradients), 1e-4, "\(type) adapter gradients")
            // Quantization changed the model: the twin is not the float32 original.
            let original = try model(nil)
            XCTAssertGreaterThan(maxRelativeDifference(lq, try original.logits(tokens: tokens, batch: 2, seqLen: 12)), 1e-4)
        }
    }

    func testGreedyGenerationUsesTheMatrixVectorKernels() throws {
        for type in QuantizationType.allCases {
            let q = try model(type), twin = try dequantizedTwin(of: q)
            let options = GenerationOptions(maxNewTokens: 12)
            let prompts: [[Int32]] = [[1, 2, 3], [40, 41]]
            XCTAssertEqual(try q.generate(prompts: [prompts[0]], options: options), try twin.generate(prompts: [prompts[0]], options: options), "\(type)")
            XCTAssertEqual(try q.generate(prompts: prompts, options: options), try twin.generate(prompts: prompts, options: options), "\(type) batched")
        }
    }

    /// Activation recomputation changes what is kept, not what is computed: the loss and every
    /// gradient are bit-for-bit those of the stored-activation pass (full fine-tuning and LoRA
    /// over a quantized base).
    func testRecomputedActivationsGiveIdenticalGradients() throws {
        let objective = Objective.languageModel(targets: tokens.map { ($0 + 1) % 300 })
        for (type, trainable) in [(nil, TrainableSet.all(ParameterLayout(config: config, head: .languageModel))),
                                  (QuantizationType.nf4, TrainableSet.loraAdapters)] as [(QuantizationType?, TrainableSet)] {
            let stored = try model(type), recomputed = try model(type)
            recomputed.recomputesActivations = true
            let a = try stored.forwardBackward(tokens: tokens, batch: 2, seqLen: 12, objective: objective, trainable: trainable)
            let b = try recomputed.forwardBackward(tokens: tokens, batch: 2, seqLen: 12, objective: objective, trainable: trainable)
            XCTAssertEqual(a, b)
            XCTAssertEqual(stored.gradients, recomputed.gradients)
            XCTAssertEqual(stored.loraAdapters!.gradients, recomputed.loraAdapters!.gradients)
            XCTAssertTrue(recomputed.workspace.stored.allSatisfy { $0 == nil }, "no block kept its activations")
            XCTAssertTrue(stored.workspace.stored.contains { $0 != nil })
        }
    }

    func testAQuantizedTensorCannotBeTrained() throws {
        let q = try model(.nf4)
        XCTAssertThrowsError(try q.forwardBackward(tokens: tokens, batch: 2, seqLen: 12,
                                                   objective: .languageModel(targets: tokens), trainable: .all(q.layout))) { error in
            XCTAssertTrue("\(error)".contains("held quantized (nf4)"), "\(error)")
        }
    }

    func testReleasedFloatCopiesReadAsZero() throws {
        let q = try model(.int8)
        let w = try XCTUnwrap(q.tensor("h.0.mlp.c_fc.weight"))
        XCTAssertEqual(w.filter { $0 != 0 }.count, 0)
        XCTAssertEqual(q.tensor("wte.weight")!.filter { $0 != 0 }.count, 0)
        XCTAssertNotEqual(q.tensor("h.0.mlp.c_fc.bias")!.filter { $0 != 0 }.count, 0)
        XCTAssertEqual(q.quantizedBaseWeights?["wte.weight"]?.type, .int8)
    }

    /// The input gradient runs over blocks of input columns (three here: 128, 128, 64 of 320)
    /// and the forward product over tiles of output channels; both equal the dense products of
    /// the dequantized matrix.
    func testTiledProductsEqualTheDenseProducts() throws {
        var rng = SeededGenerator(seed: 8)
        let out = 16384, inDim = 320, M = 3
        let w = (0..<out * inDim).map { _ in Float.random(in: -1...1, using: &rng) }
        let q = QuantizedLinear(w.withUnsafeBufferPointer { QuantizedMatrix.quantize(linear: $0, rows: out, cols: inDim, as: .int8) })
        XCTAssertLessThan(min(inDim, max(64, (1 << 21) / out / 64 * 64)), inDim, "more than one column block")
        var dense = [Float](repeating: 0, count: out * inDim)
        q.dequantize(rows: 0..<out, into: &dense)
        let dY = (0..<M * out).map { _ in Float.random(in: -1...1, using: &rng) }
        var dX = [Float](repeating: 0, count: M * inDim)
        quantizedLinearBackwardInput(dY: dY, rows: M, q: q, dX: &dX, accumulate: false)
        let x = (0..<M * inDim).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = [Float](repeating: 0, count: M * out)
        linearForward(x, rows: M, inDim: inDim, outDim: out, weight: .quantized(q), bias: nil, out: &y)
        for m in 0..<M {
            for c in stride(from: 0, to: inDim, by: 7) {
                var e: Double = 0
                for o in 0..<out { e += Double(dY[m * out + o]) * Double(dense[o * inDim + c]) }
                XCTAssertEqual(Double(dX[m * inDim + c]), e, accuracy: 1e-3 * max(1, abs(e)), "dX[\(m), \(c)]")
            }
            for o in stride(from: 0, to: out, by: 997) {
                var e: Double = 0
                for c in 0..<inDim { e += Double(x[m * inDim + c]) * Double(dense[o * inDim + c]) }
                XCTAssertEqual(Double(y[m * out + o]), e, accuracy: 1e-3 * max(1, abs(e)), "y[\(m), \(o)]")
            }
        }
    }

    /// The kernels for a few input rows (a prompt): tiles of 4 x 4, 4 x 1, 1 x 4 and 1 x 1 (rows
    /// of W by rows of X), a 64-weight NF4 tail chunk, an output range at an odd start,
    /// accumulating onto Y.
    func testProductOfAFewRowsEqualsTheDequantizedProduct() throws {
        var rng = SeededGenerator(seed: 6)
        let outputs = 21, cols = 192, rows = 13
        let w = (0..<outputs * cols).map { _ in Float.random(in: -1...1, using: &rng) }
        let x = (0..<rows * cols).map { _ in Float.random(in: -1...1, using: &rng) }
        for type in QuantizationType.allCases {
            let q = QuantizedLinear(w.withUnsafeBufferPointer { QuantizedMatrix.quantize(linear: $0, rows: outputs, cols: cols, as: type) })
            try XCTSkipUnless(q.hasDirectProduct, "no AVX-512 on this machine")
            var dense = [Float](repeating: 0, count: outputs * cols)
            q.dequantize(rows: 0..<outputs, into: &dense)
            var y = [Float](repeating: 1, count: rows * outputs)
            x.withUnsafeBufferPointer { xp in
                let prepared = q.prepare(xp.baseAddress!, rows: rows)
                for range in [0..<3, 3..<outputs] { q.product(prepared, outputs: range, y: &y, ldy: outputs, accumulate: true) }
            }
            for m in 0..<rows {
                for r in 0..<outputs {
                    let expected = 1 + (0..<cols).reduce(Float(0)) { $0 + dense[r * cols + $1] * x[m * cols + $1] }
                    XCTAssertEqual(y[m * outputs + r], expected, accuracy: 1e-4, "\(type) Y[\(m), \(r)]")
                }
            }
        }
    }

    /// The vectorised NF4 dequantization (whole rows and blocks of columns) writes exactly
    /// code[index] * blockScale of the storage, element by element.
    func testNF4DequantizationEqualsTheCodeTimesItsBlockScale() throws {
        var rng = SeededGenerator(seed: 9)
        let rows = 6, cols = 192
        let w = (0..<rows * cols).map { _ in Float.random(in: -1...1, using: &rng) }
        let m = w.withUnsafeBufferPointer { QuantizedMatrix.quantize(linear: $0, rows: rows, cols: cols, as: .nf4) }
        guard case .nf4(let packed, let compressed, let block) = m.storage else { return XCTFail("not NF4") }
        let scales = compressed.decompressed(), q = QuantizedLinear(m)
        for (rowRange, columns) in [(0..<rows, 0..<cols), (1..<4, 64..<192), (5..<6, 32..<96), (2..<3, 3..<50)] {
            var out = [Float](repeating: .nan, count: rowRange.count * columns.count)
            q.dequantize(rows: rowRange, columns: columns, into: &out)
            for (i, r) in rowRange.enumerated() {
                for (j, c) in columns.enumerated() {
                    let flat = r * cols + c
                    let expected = NF4.code[packed.withUnsafeBufferPointer { NF4.index($0.baseAddress!, at: flat) }] * scales[flat / block]
                    XCTAssertEqual(out[i * columns.count + j], expected, "[\(r), \(c)]")
                }
            }
        }
    }

    func testMatrixVectorKernelsEqualTheirDequantizedProduct() throws {
        var rng = SeededGenerator(seed: 5)
        // 47 rows in ranges of 5 and 42: row groups of four with remainders, at odd starts; 192
        // columns: one 128-weight chunk of the AVX-512 NF4 kernel and a 64-weight tail, 256 two.
        let rows = 47
        for cols in [192, 256] {
            let w = (0..<rows * cols).map { _ in Float.random(in: -1...1, using: &rng) }
            let x = (0..<cols).map { _ in Float.random(in: -1...1, using: &rng) }
            for type in QuantizationType.allCases {
                let q = QuantizedLinear(w.withUnsafeBufferPointer { QuantizedMatrix.quantize(linear: $0, rows: rows, cols: cols, as: type) })
                var dense = [Float](repeating: 0, count: rows * cols)
                q.dequantize(rows: 0..<rows, into: &dense)
                var y = [Float](repeating: 1, count: rows)
                x.withUnsafeBufferPointer { xp in
                    let prepared = q.prepare(xp.baseAddress!)
                    for range in [0..<5, 5..<rows] { q.matvec(prepared, rows: range, y: &y, accumulate: true) }
                }
                for r in 0..<rows {
                    let expected = 1 + (0..<cols).reduce(Float(0)) { $0 + dense[r * cols + $1] * x[$1] }
                    XCTAssertEqual(y[r], expected, accuracy: 1e-4, "\(type) row \(r) of [\(rows), \(cols)]")
                }
            }
        }
    }
}

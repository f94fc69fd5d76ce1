import ArtifactKit
import Foundation
import Quantization
import TestSupport
import XCTest
@testable import GPT2
@testable import GPT2Weights

/// The quantized base file: written once from the float32 base, read back into a model that
/// computes exactly what the model that wrote it computes; a file of another base, type or size
/// is refused naming what to rerun.
final class QuantizedBaseArtifactTests: XCTestCase {
    let layout = ParameterLayout(config: GPT2Config(name: "q-tiny", vocabSize: 300, contextLength: 32, embDim: 128, nHeads: 4, nLayers: 2),
                                 head: .languageModel)
    let tokens: [Int32] = (0..<16).map { Int32(($0 * 37 + 5) % 300) }

    func testRoundTripComputesTheSameLogits() throws {
        let dir = try TestPaths.makeTempDir("qbase")
        defer { try? FileManager.default.removeItem(at: dir) }
        for type in QuantizationType.allCases {
            let url = dir.appendingPathComponent("\(type).bin")
            let model = try GPT2Model(layout: layout, params: randomWeights(layout: layout, seed: 9))
            try QuantizedBaseArtifact.write(model: model, baseIdentity: "random seed 9", type: type, to: url)
            XCTAssertTrue(QuantizedBaseArtifact.matches(url, layout: layout, baseIdentity: "random seed 9", type: type))
            let loaded = try QuantizedBaseArtifact.loadModel(url, layout: layout, baseIdentity: "random seed 9", type: type)
            XCTAssertEqual(try loaded.logits(tokens: tokens, batch: 1, seqLen: 16), try model.logits(tokens: tokens, batch: 1, seqLen: 16), "\(type)")
            XCTAssertEqual(loaded.parametersWithDequantizedBase(), model.parametersWithDequantizedBase())
            let meta = try QuantizedBaseFile.readMeta(url).meta
            let fc = try XCTUnwrap(meta.tensors.first { $0.name == "h.0.mlp.c_fc.weight" })
            XCTAssertEqual(fc.storage, type.rawValue)
            XCTAssertEqual(fc.shape, [512, 128])
            // N(0, 0.02) weights: NF4 keeps about 10% relative RMS error, int8 under 1.5%.
            XCTAssertLessThan(try XCTUnwrap(fc.relativeRMSError), type == .nf4 ? 0.12 : 0.015)
            XCTAssertGreaterThan(try XCTUnwrap(fc.relativeRMSError), 0)
        }
    }

    func testAnotherBaseOrTypeOrATruncatedFileIsRefused() throws {
        let dir = try TestPaths.makeTempDir("qbase-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("base.bin")
        let model = try GPT2Model(layout: layout, params: randomWeights(layout: layout, seed: 9))
        try QuantizedBaseArtifact.write(model: model, baseIdentity: "random seed 9", type: .nf4, to: url)
        XCTAssertFalse(QuantizedBaseArtifact.matches(url, layout: layout, baseIdentity: "random seed 9", type: .int8))
        XCTAssertThrowsError(try QuantizedBaseArtifact.loadModel(url, layout: layout, baseIdentity: "random seed 10", type: .nf4)) {
            XCTAssertTrue("\($0)".contains("made for another model or base"), "\($0)")
            XCTAssertTrue("\($0)".contains("--quantize-base nf4"), "\($0)")
        }
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 3).write(to: url)
        XCTAssertThrowsError(try QuantizedBaseArtifact.loadModel(url, layout: layout, baseIdentity: "random seed 9", type: .nf4)) {
            XCTAssertTrue("\($0)".contains("truncated or corrupt"), "\($0)")
        }
    }

    func testANonFiniteWeightIsRefusedNamingTheTensor() throws {
        var params = randomWeights(layout: layout, seed: 9)
        params[layout.spec(named: "h.1.attn.c_proj.weight")!.offset + 5] = .nan
        let model = try GPT2Model(layout: layout, params: params)
        XCTAssertThrowsError(try model.quantizeBase(.nf4)) { XCTAssertTrue("\($0)".contains("h.1.attn.c_proj.weight"), "\($0)") }
    }
}

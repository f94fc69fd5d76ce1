import Foundation
import GPT2
import GPT2Weights
import TestSupport
import XCTest

/// One case of the golden files written by tools/reference/gpt2_parity.py and lora_parity.py:
/// `<name>.weights.safetensors` (the base weights, with the config and head in its metadata, and
/// the LoRA adapters with their rank and alpha for lora-parity) and `<name>.golden.safetensors`
/// (input ids and the reference outputs), in Tests/Fixtures/<folder>. Shared by GPT2Tests (the
/// language model) and ClassificationTests (the chapter-6 classifier).
public struct ParityFixture {
    public let weights: SafetensorsFile
    public let golden: SafetensorsFile
    public let layout: ParameterLayout
    public let params: [Float]
    public let batch: Int
    public let seqLen: Int
    public let tokens: [Int32]

    public init(folder: String, name: String) throws {
        let dir = TestPaths.fixtures.appendingPathComponent(folder)
        weights = try SafetensorsFile(contentsOf: dir.appendingPathComponent("\(name).weights.safetensors"))
        golden = try SafetensorsFile(contentsOf: dir.appendingPathComponent("\(name).golden.safetensors"))
        let json = try XCTUnwrap(weights.metadata["config"])
        let raw = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let config = try JSONDecoder().decode(GPT2Config.self, from: Data(json.utf8))
        let head: ModelHead = (raw["head"] as? String) == "lm" ? .languageModel : .classifier(numClasses: 2)
        layout = ParameterLayout(config: config, head: head)
        var params = [Float](repeating: 0, count: layout.totalCount)
        for spec in layout.tensors {
            XCTAssertEqual(weights.info(spec.name)?.shape, spec.shape, spec.name)
            params.replaceSubrange(spec.range, with: try weights.floats(spec.name))
        }
        self.params = params
        let ids = try golden.int64s("input_ids")
        let shape = try XCTUnwrap(golden.info("input_ids")?.shape)
        batch = shape[0]
        seqLen = shape[1]
        tokens = ids.map { Int32($0) }
    }

    /// A model over the fixture's initial weights.
    public func model() throws -> GPT2Model { try GPT2Model(layout: layout, params: params) }

    /// The LoRA adapters stored beside the base weights (lora-parity), with the script's rank and alpha.
    public func loraWeights() throws -> LoRAWeights {
        let rank = try XCTUnwrap(weights.metadata["lora_rank"].flatMap(Int.init))
        let alpha = try XCTUnwrap(weights.metadata["lora_alpha"].flatMap(Float.init))
        let loraLayout = try LoRALayout(layout: layout, rank: rank)
        var values = [Float](repeating: 0, count: loraLayout.totalCount)
        for t in loraLayout.tensors {
            XCTAssertEqual(weights.info(t.name)?.shape, t.shape, t.name)
            values.replaceSubrange(t.offset..<(t.offset + t.shape[0] * t.shape[1]), with: try weights.floats(t.name))
        }
        return try LoRAWeights(settings: LoRASettings(rank: rank, alpha: alpha), layout: loraLayout, values: values)
    }

    /// The values of adapter tensor `name` (`<linear>.lora_A` / `.lora_B`) in an adapter buffer.
    public static func adapterTensor(_ layout: LoRALayout, _ values: [Float], _ name: String) throws -> [Float] {
        let t = try XCTUnwrap(layout.tensors.first { $0.name == name }, name)
        return Array(values[t.offset..<(t.offset + t.shape[0] * t.shape[1])])
    }
}

/// Norm-wise relative error and max abs difference of `actual` against the golden `expected`.
/// Printed (prefixed with `label`) so the achieved agreement can be quoted (docs/model.md), not only the bound.
public func compareParity(_ label: String, _ actual: [Float], _ expected: [Float], rel: Double, absMax: Double, _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
    var diff2 = 0.0, ref2 = 0.0, maxAbs = 0.0
    for (a, e) in zip(actual, expected) {
        let d = Double(a) - Double(e)
        diff2 += d * d
        ref2 += Double(e) * Double(e)
        maxAbs = max(maxAbs, abs(d))
    }
    let relErr = diff2.squareRoot() / max(ref2.squareRoot(), 1e-30)
    print(String(format: "%@ %@: relative %.2e, max abs %.2e", label, what, relErr, maxAbs))
    XCTAssertTrue(relErr <= rel || diff2.squareRoot() <= 1e-6, "\(what): relative error \(relErr) > \(rel)", file: file, line: line)
    XCTAssertLessThanOrEqual(maxAbs, absMax, "\(what): max abs difference", file: file, line: line)
}

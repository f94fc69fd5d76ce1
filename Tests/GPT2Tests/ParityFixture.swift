import Foundation
import TestSupport
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// One case of the golden files written by tools/reference/gpt2_parity.py and lora_parity.py:
/// `<name>.weights.safetensors` (the base weights, with the config and head in its metadata) and
/// `<name>.golden.safetensors` (input ids and the reference outputs), in Tests/Fixtures/<folder>.
struct ParityFixture {
    let weights: SafetensorsFile
    let golden: SafetensorsFile
    let layout: ParameterLayout
    let params: [Float]
    let batch: Int
    let seqLen: Int
    let tokens: [Int32]

    init(folder: String, name: String) throws {
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
}

/// Norm-wise relative error and max abs difference of `actual` against the golden `expected`.
/// Printed (prefixed with `label`) so the achieved agreement can be quoted (docs/model.md), not only the bound.
func compareParity(_ label: String, _ actual: [Float], _ expected: [Float], rel: Double, absMax: Double, _ what: String,
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

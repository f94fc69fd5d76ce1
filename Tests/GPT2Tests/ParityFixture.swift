import Foundation
import TestSupport
import XCTest
@testable import GPT2

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

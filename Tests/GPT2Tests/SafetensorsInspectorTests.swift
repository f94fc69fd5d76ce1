import Foundation
@testable import GPT2Weights
import TestSupport
import XCTest

final class SafetensorsInspectorTests: XCTestCase {
    func testCheckpointShowsMetadataAndEveryTensor() throws {
        let url = TestPaths.fixtures.appendingPathComponent("weights/swift-checkpoint.safetensors")
        let text = try SafetensorsInspector().inspect(url: url, rows: 5)
        XCTAssertTrue(text.contains("format:  safetensors, 30 tensors"), text)
        XCTAssertTrue(text.contains("format          llm-finetune-checkpoint"), text)
        XCTAssertTrue(text.contains("h.0.attn.c_attn.weight  F32  [64, 192]"), text)
        XCTAssertTrue(text.contains("out_head.bias"), text)
    }
}

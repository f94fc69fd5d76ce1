import ArtifactKit
import Foundation
import PipelineRunner
import TestSupport
import XCTest

final class MetricsInspectorTests: XCTestCase {
    func testMetricsOfSplitsBecomeATable() throws {
        let dir = try TestPaths.makeTempDir("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.json")
        try Data(#"{"test": {"rows": 300, "accuracy": 0.91, "confusion": [[1, 2], [3, 4]]}, "train": {"rows": 1045, "accuracy": 0.5}}"#.utf8).write(to: url)
        let lines = try MetricsTable.render(url).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, ["       rows  accuracy", "test    300    0.9100", "train  1045    0.5000"])
    }

    func testOtherMetricsAreFlattened() throws {
        let dir = try TestPaths.makeTempDir("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.json")
        try Data(#"{"test": {"loss": 2.5}, "judge": "unavailable"}"#.utf8).write(to: url)
        XCTAssertEqual(try MetricsTable.render(url), "judge  unavailable\ntest.loss  2.5000")
    }
}

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

    func testAClassifiersSplitAlsoGetsItsPerClassTableAndConfusionMatrix() throws {
        let dir = try TestPaths.makeTempDir("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.json")
        try Data(#"""
        {"test": {"rows": 4, "accuracy": 0.5, "confusion": [[1, 1], [1, 1]],
          "classes": [{"name": "ham", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
                      {"name": "spam", "precision": 0.25, "recall": 1, "f1": 0.4, "support": 2}],
          "macro": {"precision": 0.375, "recall": 0.75, "f1": 0.45}}}
        """#.utf8).write(to: url)
        let lines = try MetricsTable.render(url).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(Array(lines.dropFirst(3)), [
            "test split  precision  recall      f1  support",
            "ham            0.5000  0.5000  0.5000        2",
            "spam           0.2500  1.0000  0.4000        2",
            "macro avg      0.3750  0.7500  0.4500        4",
            "actual \\ predicted  ham  spam",
            "ham                   1     1",
            "spam                  1     1",
        ])
    }

    func testOtherMetricsAreFlattened() throws {
        let dir = try TestPaths.makeTempDir("metrics")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.json")
        try Data(#"{"test": {"loss": 2.5}, "judge": "unavailable"}"#.utf8).write(to: url)
        XCTAssertEqual(try MetricsTable.render(url), "judge  unavailable\ntest.loss  2.5000")
    }
}

import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

final class InspectorTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("show") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ data: Data) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
        return url
    }

    func show(_ url: URL, rows: Int = 5) throws -> String {
        try InspectorRegistry.standard().inspect(url: url, rows: rows)
    }

    func testBinaryArtifactShowsMagicAndVersion() throws {
        var w = BinaryWriter()
        ArtifactHeader(magic: "LLMFTCLS", version: 3).write(to: &w)
        w.array([Int32](repeating: 50256, count: 16))
        let url = try write("train.bin", w.data)
        XCTAssertEqual(ArtifactMagic.read(url)?.magic, "LLMFTCLS")
        XCTAssertEqual(ArtifactMagic.read(url)?.version, 3)
        let text = try show(url)
        XCTAssertTrue(text.contains("magic:   LLMFTCLS"), text)
        XCTAssertTrue(text.contains("version: 3"), text)
        XCTAssertTrue(text.contains("(76 bytes)"), text)
    }

    func testRegisteredInspectorWinsForItsMagic() throws {
        struct Decoder: ArtifactInspector {
            func canInspect(url: URL, magic: String?) -> Bool { magic == "LLMFTCLS" }
            func inspect(url: URL, rows: Int) throws -> String { "decoded \(rows) rows" }
        }
        var w = BinaryWriter()
        ArtifactHeader(magic: "LLMFTCLS", version: 1).write(to: &w)
        let cls = try write("a.bin", w.data)
        var w2 = BinaryWriter()
        ArtifactHeader(magic: "OTHERMAG", version: 1).write(to: &w2)
        let other = try write("b.bin", w2.data)
        var registry = InspectorRegistry.standard()
        registry.register(Decoder())
        XCTAssertEqual(try registry.inspect(url: cls, rows: 7), "decoded 7 rows")
        XCTAssertTrue(try registry.inspect(url: other, rows: 7).contains("magic:   OTHERMAG"))
    }

    func testUnknownBinaryAndTextFiles() throws {
        let bin = try write("x.dat", Data([0, 1, 2, 255]))
        XCTAssertTrue(try show(bin).contains("first bytes: 00 01 02 ff"))
        let txt = try write("notes.txt", Data("one\ntwo\nthree\n".utf8))
        XCTAssertTrue(try show(txt, rows: 2).hasPrefix("one\ntwo\n(2 of"))
    }

    func testCSVShowsHeaderAndFirstRowsAsATable() throws {
        let url = try write("test.csv", Data("Label,Text\nham,\"Hello, world\"\nspam,\"Say \"\"win\"\"\"\nham,third\n".utf8))
        let text = try show(url, rows: 2)
        XCTAssertEqual(text, """
        Label  Text
        -----  ------------
        ham    Hello, world
        spam   Say "win"
        (2 of 3 rows, 2 columns)
        """)
    }

    func testJSONAndJSONLines() throws {
        let json = try write("settings.json", Data("{\"b\": [1, 2], \"a\": \"x\"}".utf8))
        XCTAssertEqual(try show(json), "{\n  \"a\" : \"x\",\n  \"b\" : [\n    1,\n    2\n  ]\n}")
        let lines = try write("data.jsonl", Data("{\"i\": 1}\n{\"i\": 2}\n{\"i\": 3}\n".utf8))
        XCTAssertEqual(try show(lines, rows: 2), "[1] {\n  \"i\" : 1\n}\n[2] {\n  \"i\" : 2\n}\n(2 of 3 lines)")
    }

    func testDirectoryShowsManifestSummaryAndFiles() throws {
        let artifact = dir.appendingPathComponent("prepared")
        var w = BinaryWriter()
        ArtifactHeader(magic: "LLMFTCLS", version: 1).write(to: &w)
        let bin = try write("prepared/train.bin", w.data)
        let manifest = Manifest(format: "classification-shards", formatVersion: 1, tool: "prepare",
                                params: ["seed": 123], outputs: [try FileRecord.of(bin, as: "train.bin")],
                                stats: ["train_rows": 1045])
        try manifest.write(into: artifact)
        let text = try show(artifact)
        XCTAssertTrue(text.contains("format:   classification-shards v1"), text)
        XCTAssertTrue(text.contains("tool:     prepare \(ToolInfo.version)"), text)
        XCTAssertTrue(text.contains("seed  123"), text)
        XCTAssertTrue(text.contains("train_rows  1045"), text)
        XCTAssertTrue(text.contains("files (2):"), text)
        XCTAssertFalse(text.contains(" \n"), "no trailing spaces")
        XCTAssertTrue(text.contains("train.bin      12 B   LLMFTCLS v1"), text)
        // The manifest on its own is summarized the same way.
        XCTAssertTrue(try show(artifact.appendingPathComponent("manifest.json")).hasPrefix("format:   classification-shards v1"))
    }

    func testMissingPathIsAnError() {
        let m = pipelineErrorMessage { _ = try show(dir.appendingPathComponent("nope")) }
        XCTAssertTrue(m.contains("no such file or directory"), m)
    }
}

import ArtifactKit
@testable import Fetcher
import Foundation
import TestSupport
import XCTest

/// Reading `params.fetch.sources` from pipeline YAML.
final class SourceSpecTests: XCTestCase {
    let valid = """
        params:
          other: {x: 1}
          fetch:
            sources:
              - name: zip
                file: a/b.zip
                urls: [https://example.org/b.zip, file:///srv/b.zip]
                sha256: 1587EA43E58E82B14FF1F5425C88E17F8496BFCDB67A583DBFF9EEFAF9963CE3
                size: 10
                extract:
                  members: {inner: inner.tsv}
                  max_uncompressed_bytes: 100
        stages: {}
        """

    func load(_ yaml: String) throws -> [SourceSpec] {
        try loadSources(fromYAML: yaml, file: "test-pipeline.yaml")
    }

    func expectError(_ yaml: String, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(yaml), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("test-pipeline.yaml"), text, file: file, line: line)
            for n in needles { XCTAssertTrue(text.contains(n), "expected \(n) in: \(text)", file: file, line: line) }
        }
    }

    func testParsesASource() throws {
        let s = try load(valid)
        XCTAssertEqual(s.count, 1)
        XCTAssertEqual(s[0].file, "a/b.zip")
        XCTAssertEqual(s[0].sha256, "1587ea43e58e82b14ff1f5425c88e17f8496bfcdb67a583dbff9eefaf9963ce3", "hex is lowercased")
        XCTAssertEqual(s[0].extract, ExtractSpec(members: ["inner": "inner.tsv"], maxUncompressedBytes: 100))
    }

    func testRepositoryPipelineFile() throws {
        let sources = try loadSources(fromPipelineFile: TestPaths.repoRoot.appendingPathComponent("pipeline.yaml"))
        XCTAssertEqual(sources.map(\.name), ["sms-spam-collection", "gpt2-encoder", "gpt2-vocab"])
        XCTAssertEqual(sources[0].urls.count, 2)
        XCTAssertEqual(sources[0].extract?.members, ["SMSSpamCollection": "SMSSpamCollection.tsv"])
        XCTAssertEqual(sources[1].file, "gpt2/encoder.json")
    }

    func testRepositoryWeightsFileHasEverySizeAndPinsOnlyWhatWasChecked() throws {
        let sources = try loadSources(fromPipelineFile: TestPaths.repoRoot.appendingPathComponent("weights.yaml"))
        XCTAssertEqual(sources.map(\.name), ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"], "named like train.model")
        for s in sources {
            XCTAssertEqual(s.file, "\(s.name)/model.safetensors")
            let repo = s.name == "gpt2-small" ? "gpt2" : s.name
            XCTAssertEqual(s.urls, ["https://huggingface.co/openai-community/\(repo)/resolve/main/model.safetensors"])
        }
        XCTAssertEqual(sources[0].sha256, "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707")
        XCTAssertEqual(sources[0].size, 548_105_171)
        for s in sources.dropFirst() {
            XCTAssertFalse(s.isPinned, s.name)
            XCTAssertNil(s.size, s.name)
        }
    }

    func testUnpinnedSource() throws {
        let yaml = valid.replacingOccurrences(of: "sha256: 1587EA43E58E82B14FF1F5425C88E17F8496BFCDB67A583DBFF9EEFAF9963CE3\n        size: 10\n", with: "sha256: unpinned\n")
            .replacingOccurrences(of: "        extract:\n          members: {inner: inner.tsv}\n          max_uncompressed_bytes: 100\n", with: "")
        let s = try load(yaml)
        XCTAssertNil(s[0].sha256)
        XCTAssertNil(s[0].size)
        XCTAssertFalse(s[0].isPinned)
        // A size may still be declared (and is then checked).
        XCTAssertEqual(try load(yaml.replacingOccurrences(of: "sha256: unpinned", with: "sha256: unpinned\n        size: 7"))[0].size, 7)
        // Unpinned archives are not extracted.
        expectError(valid.replacingOccurrences(of: "sha256: 1587EA43E58E82B14FF1F5425C88E17F8496BFCDB67A583DBFF9EEFAF9963CE3", with: "sha256: unpinned"),
                    ["extract", "unpinned source cannot be extracted"])
        // Written back as `unpinned`.
        let json = String(decoding: try JSONEncoder().encode(s[0]), as: UTF8.self)
        XCTAssertTrue(json.contains("\"sha256\":\"unpinned\""), json)
        XCTAssertFalse(json.contains("size"), json)
    }

    func testUnknownKeyInSourceIsNamed() {
        expectError(valid.replacingOccurrences(of: "size: 10", with: "size: 10\n        checksum: abc"),
                    ["unknown key `checksum`", "params.fetch.sources[0]"])
    }

    func testUnknownKeyInExtractIsNamed() {
        expectError(valid.replacingOccurrences(of: "max_uncompressed_bytes", with: "max_bytes"), ["unknown key `max_bytes`"])
    }

    func testMissingKeyIsNamed() {
        expectError(valid.replacingOccurrences(of: "        size: 10\n", with: ""), ["missing key `size`"])
    }

    func testWrongTypeIsNamed() {
        expectError(valid.replacingOccurrences(of: "size: 10", with: "size: ten"), ["sources[0].size"])
    }

    func testBadValuesAreNamed() {
        expectError(valid.replacingOccurrences(of: "sha256: 1587EA43", with: "sha256: 1587EA4"), ["sha256", "64 hex digits"])
        expectError(valid.replacingOccurrences(of: "file: a/b.zip", with: "file: ../b.zip"), ["file", "`..`"])
        expectError(valid.replacingOccurrences(of: "https://example.org/b.zip", with: "ftp://example.org/b.zip"), ["urls", "ftp://"])
        expectError(valid.replacingOccurrences(of: "{inner: inner.tsv}", with: "{inner: ../../x}"), ["zip-slip"])
        expectError(valid.replacingOccurrences(of: "{inner: inner.tsv}", with: "{inner: a/b.zip}"), ["also written by source `zip`"])
    }

    func testNestedOutputsAreRejected() {
        let nested = [SourceSpec(name: "a", file: "gpt2", urls: ["file:///a"], sha256: String(repeating: "0", count: 64), size: 1),
                      SourceSpec(name: "b", file: "gpt2/encoder.json", urls: ["file:///b"], sha256: String(repeating: "0", count: 64), size: 1)]
        XCTAssertThrowsError(try validate(nested, file: "p.yaml")) { error in
            XCTAssertTrue("\(error)".contains("is also a directory holding `gpt2/encoder.json`"), "\(error)")
        }
    }

    func testNotYAML() {
        expectError("params: [unclosed", ["test-pipeline.yaml"])
    }

    func testUnsafePathReasons() {
        XCTAssertNil(unsafePathReason("gpt2/encoder.json"))
        XCTAssertNotNil(unsafePathReason("../x"))
        XCTAssertNotNil(unsafePathReason("a/../../x"))
        XCTAssertNotNil(unsafePathReason("/abs"))
        XCTAssertNotNil(unsafePathReason("a\\..\\x"))
        XCTAssertNotNil(unsafePathReason("C:x"))
        XCTAssertNotNil(unsafePathReason("a//b"))
        XCTAssertNotNil(unsafePathReason(""))
    }
}

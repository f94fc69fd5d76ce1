import ArtifactKit
import DataPrep
import PipelineRunner
import TestSupport
import XCTest

final class DataInspectorTests: XCTestCase {
    func testClassificationShardIsDecodedWithTheVocabularyFromItsManifest() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("../shared/assets is absent: no GPT-2 vocabulary") }
        let dir = try TestPaths.makeTempDir("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        // "Hello world" = [15496, 995] in GPT-2 BPE.
        let shard = ClassificationShard(sequenceLength: 4, padTokenID: 50256, numClasses: 2,
                                        tokens: [15496, 995, 50256, 50256, 15496, 50256, 50256, 50256],
                                        labels: [1, 0], lengths: [2, 1])
        let url = dir.appendingPathComponent("train.bin")
        try shard.write(to: url)
        let encoder = assets.appendingPathComponent("gpt2/encoder.json")
        try Manifest(format: "classification-dataset", formatVersion: 1, tool: "test",
                     inputs: [FileRecord(path: encoder.path, sha256: "-", size: 0)]).write(into: dir)

        let text = try InspectorRegistry.full().inspect(url: url, rows: 5)
        XCTAssertTrue(text.contains("rows:            2"), text)
        XCTAssertTrue(text.contains("label 0: 1 rows, label 1: 1 rows"), text)
        XCTAssertTrue(text.contains("\"Hello world\""), text)
        XCTAssertTrue(text.contains("row 1: label 0, 1 tokens + 3 pad"), text)
    }

    func testCorruptShardNamesTheStageToRerun() throws {
        let dir = try TestPaths.makeTempDir("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("test.bin")
        var w = BinaryWriter()
        ClassificationShard.header.write(to: &w)
        w.u32(7)  // far too short for the header
        try w.data.write(to: url)
        XCTAssertThrowsError(try InspectorRegistry.full().inspect(url: url, rows: 1)) { error in
            XCTAssertTrue("\(error)".contains("prepare"), "\(error)")
        }
    }
}

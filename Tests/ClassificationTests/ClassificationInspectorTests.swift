import ArtifactKit
import Classification
import Foundation
import TestSupport
import XCTest

final class ClassificationInspectorTests: XCTestCase {
    func testClassificationShardIsDecodedWithTheVocabularyFromItsManifest() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("../shared/assets is absent: no GPT-2 vocabulary") }
        let dir = try TestPaths.makeTempDir("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        // "Hello world" = [15496, 995] in GPT-2 BPE.
        let shard = LabeledRows(tokens: [15496, 995, 50256, 50256, 15496, 50256, 50256, 50256],
                                labels: [1, 0], lengths: [2, 1], sequenceLength: 4, padTokenID: 50256, numClasses: 2)
        let url = dir.appendingPathComponent("train.bin")
        try ClassificationShard.write(shard, to: url)
        let encoder = assets.appendingPathComponent("gpt2/encoder.json")
        try Manifest(format: "classification-dataset", formatVersion: 1, tool: "test",
                     inputs: [FileRecord(path: encoder.path, sha256: "-", size: 0)]).write(into: dir)

        let text = try ClassificationShardInspector().inspect(url: url, rows: 5)
        XCTAssertTrue(text.contains("rows:            2"), text)
        XCTAssertTrue(text.contains("label 0: 1 rows, label 1: 1 rows"), text)
        XCTAssertTrue(text.contains("\"Hello world\""), text)
        XCTAssertTrue(text.contains("row 1: label 0, 1 tokens + 3 pad"), text)

        // With the class names of prepare's manifest, rows and counts are shown by name.
        try Manifest(format: "classification-dataset", formatVersion: 1, tool: "test",
                     params: ["label_names": .array([.string("ham"), .string("spam")])],
                     inputs: [FileRecord(path: encoder.path, sha256: "-", size: 0)]).write(into: dir)
        let named = try ClassificationShardInspector().inspect(url: url, rows: 5)
        XCTAssertTrue(named.contains("ham (0): 1 rows, spam (1): 1 rows"), named)
        XCTAssertTrue(named.contains("row 0: spam (1), 2 tokens + 2 pad"), named)
    }

    /// trunk.bin (train's frozen-trunk states): what it holds, per split, and its size checked.
    func testTrunkStatesFileIsDescribedAndItsSizeChecked() throws {
        let dir = try TestPaths.makeTempDir("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("trunk.bin")
        let meta = TrunkStatesFile.Meta(kind: "hidden", block: 11, embDim: 2, model: "tiny", base: "random seed 123",
                                        frozenParameters: 10, frozenSHA256: "ab", pooling: "token_position=last average_embeddings=false",
                                        splits: [.init(name: "train", rows: 2, sequenceLength: 3, shardSHA256: "0123456789abcdef"),
                                                 .init(name: "test", rows: 1, sequenceLength: 3, shardSHA256: "fe")])
        let values: [[Float]] = [[1, 2, 3, 4, 5, 6], [7, 8], [9, 10, 11, 12]]
        try TrunkStatesFile.write(meta: meta, positions: [[3, 1], [2]], to: url) { s, r in
            values[s == 0 ? r : 2].withUnsafeBufferPointer { $0 }
        }
        let file = try TrunkStatesFile.open(url)
        XCTAssertEqual(file.meta, meta)
        var rows: [[Float]] = []
        file.forEachRow(ofSplit: 0) { _, v in rows.append(Array(v)) }
        file.forEachRow(ofSplit: 1) { _, v in rows.append(Array(v)) }
        XCTAssertEqual(rows, values)

        let text = try TrunkStatesInspector().inspect(url: url, rows: 5)
        XCTAssertTrue(text.contains("frozen-trunk states LLMFTTRK v1"), text)
        XCTAssertTrue(text.contains("the hidden states entering block 11"), text)
        XCTAssertTrue(text.contains("base:     random seed 123"), text)
        let trainLine = text.split(separator: "\n").first { $0.hasPrefix("  train") }.map(String.init) ?? ""
        XCTAssertEqual(trainLine.split(separator: " "), ["train", "2", "3", "4", "32", "B", "0123456789ab"], text)

        let data = try Data(contentsOf: url)
        try data.dropLast(4).write(to: url)
        XCTAssertThrowsError(try TrunkStatesInspector().inspect(url: url, rows: 5)) {
            XCTAssertTrue("\($0)".contains("its header describes \(data.count) (truncated or damaged)"), "\($0)")
        }
    }

    func testCorruptShardNamesTheStageToRerun() throws {
        let dir = try TestPaths.makeTempDir("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("test.bin")
        var w = BinaryWriter()
        ClassificationShard.header.write(to: &w)
        w.u32(7)  // far too short for the header
        try w.data.write(to: url)
        XCTAssertThrowsError(try ClassificationShardInspector().inspect(url: url, rows: 1)) { error in
            XCTAssertTrue("\(error)".contains("prepare"), "\(error)")
        }
    }
}

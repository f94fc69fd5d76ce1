import ArtifactKit
import TestSupport
import Classification
import XCTest

final class ClassificationShardTests: XCTestCase {
    private func sample() -> LabeledRows {
        LabeledRows(tokens: [1, 2, 50256, 40000, 5, 6], labels: [0, 1], lengths: [2, 3],
                    sequenceLength: 3, padTokenID: 50256, numClasses: 2)
    }

    func testRoundTripAndLayout() throws {
        let dir = try TestPaths.makeTempDir("shard")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("train.bin")
        try ClassificationShard.write(sample(), to: url)
        let data = try Data(contentsOf: url)
        XCTAssertEqual(data.count, ClassificationShard.expectedFileSize(rows: 2, sequenceLength: 3))
        XCTAssertEqual(data.count, 36 + 2 * 6 + 4 * 2 + 4 * 2)
        XCTAssertEqual(Array(data.prefix(8)), Array("LLMFTCLS".utf8))
        let back = try ClassificationShard.read(from: url)
        XCTAssertEqual(back, sample())
        XCTAssertEqual(back.rowCount, 2)
        XCTAssertEqual(Array(back.row(1)), [40000, 5, 6])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["train.bin"], "no temporary left behind")
    }

    func testEmptyShardRoundTrips() throws {
        let empty = LabeledRows(tokens: [], labels: [], lengths: [], sequenceLength: 4, padTokenID: 0, numClasses: 2)
        XCTAssertEqual(try ClassificationShard.decode(ClassificationShard.encode(empty), source: "e.bin"), empty)
    }

    func testTokenIDsAbove16BitsAreRefused() {
        var wide = sample()
        wide.tokens[4] = 70000
        let e = DataPrepFixtures.pipelineError { _ = try ClassificationShard.encode(wide) }
        XCTAssertTrue(e?.message.contains("token id 70000 in row 1") ?? false, e?.description ?? "")
        XCTAssertTrue(e?.message.contains("16-bit") ?? false)
        var pad = sample()
        pad.padTokenID = 65536
        XCTAssertNotNil(DataPrepFixtures.pipelineError { _ = try ClassificationShard.encode(pad) })
    }

    private func assertRejected(_ data: Data, mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try TestPaths.makeTempDir("shard-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("validation.bin")
        try data.write(to: url)
        let e = DataPrepFixtures.pipelineError({ _ = try ClassificationShard.read(from: url) }, file: file, line: line)
        XCTAssertEqual(e?.location, url.path, file: file, line: line)
        XCTAssertTrue(e?.message.contains(mentions) ?? false, e?.description ?? "", file: file, line: line)
        XCTAssertTrue(e?.hint?.contains("pipeline run prepare") ?? false, file: file, line: line)
        XCTAssertTrue(e?.hint?.contains("prepare classification") ?? false, file: file, line: line)
    }

    func testWrongMagicVersionSizeAndValuesAreRejected() throws {
        let good = try ClassificationShard.encode(sample())
        var magic = good; magic[0] = UInt8(ascii: "X")
        try assertRejected(magic, mentions: "magic")
        var version = good; version[8] = 2
        try assertRejected(version, mentions: "version 2")
        try assertRejected(good.dropLast(), mentions: "requires exactly")
        try assertRejected(good + Data([0]), mentions: "requires exactly")
        try assertRejected(good.prefix(20), mentions: "shorter than")
        var rows = good; rows[12] = 3
        try assertRejected(rows, mentions: "requires exactly")
        var garbled = good; garbled[19] = 0x7f
        try assertRejected(garbled, mentions: "far more than")
        var label = good; label[36 + 12] = 5
        try assertRejected(label, mentions: "label 5")
        var length = good; length[36 + 12 + 8] = 9
        try assertRejected(length, mentions: "length 9")
    }

    func testMissingFileHasRerunHint() {
        let e = DataPrepFixtures.pipelineError { _ = try ClassificationShard.read(from: URL(fileURLWithPath: "/nonexistent/train.bin")) }
        XCTAssertEqual(e?.location, "/nonexistent/train.bin")
        XCTAssertTrue(e?.hint?.contains("pipeline run prepare") ?? false)
    }
}

import ArtifactKit
import TestSupport
import Instruct
import XCTest

final class InstructShardTests: XCTestCase {
    private func sample() throws -> InstructionShard {
        try InstructionShard(rows: [[1, 2, 3], [], [50256, 0, 65535, 7]], responseStarts: [2, 0, 4])
    }

    func testRoundTrip() throws {
        let dir = try TestPaths.makeTempDir("instruct-shard")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("train.bin")
        let shard = try sample()
        try shard.write(to: url)
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber
        XCTAssertEqual(size?.intValue, InstructionShard.fileSize(rows: 3, tokens: 7))
        let back = try InstructionShard.read(from: url)
        XCTAssertEqual(back, shard)
        XCTAssertEqual(back.rowCount, 3)
        XCTAssertEqual(back.totalTokens, 7)
        XCTAssertEqual(Array(back.tokens(row: 0)), [1, 2, 3])
        XCTAssertEqual(Array(back.tokens(row: 1)), [])
        XCTAssertEqual(Array(back.tokens(row: 2)), [50256, 0, 65535, 7])
        XCTAssertEqual((0..<3).map { back.responseStart(row: $0) }, [2, 0, 4])
        XCTAssertEqual(back.row(2), [50256, 0, 65535, 7])
        // No temporary file is left beside the shard.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["train.bin"])
    }

    func testExactByteLayout() throws {
        let data = try InstructionShard(rows: [[258, 3]], responseStarts: [1]).encoded()
        var expected: [UInt8] = Array("LLMFTINS".utf8) + [1, 0, 0, 0]
        expected += [1, 0, 0, 0, 0, 0, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0]          // rows, tokens
        expected += [0, 0, 0, 0, 0, 0, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0]          // offsets
        expected += [2, 1, 3, 0]                                                  // tokens 258, 3
        expected += [1, 0, 0, 0]                                                  // response start
        XCTAssertEqual([UInt8](data), expected)
    }

    func testRejectsTokensAndStartsThatDoNotFit() {
        XCTAssertThrowsError(try InstructionShard(rows: [[65536]], responseStarts: [0]))
        XCTAssertThrowsError(try InstructionShard(rows: [[-1]], responseStarts: [0]))
        XCTAssertThrowsError(try InstructionShard(rows: [[1, 2]], responseStarts: [3]))
        XCTAssertThrowsError(try InstructionShard(rows: [[1, 2]], responseStarts: []))
    }

    private func assertDecodeError(_ data: Data, contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try InstructionShard.decode(data, source: "data/instruct/train.bin"), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(fragment), "\(text) lacks \(fragment)", file: file, line: line)
            XCTAssertTrue(text.contains("data/instruct/train.bin"), "error does not name the file: \(text)", file: file, line: line)
            XCTAssertTrue(text.contains("pipeline run -f pipelines/instruct.yaml prepare"), "no rerun hint: \(text)", file: file, line: line)
        }
    }

    func testWrongMagicVersionSizeAndOffsets() throws {
        let good = try sample().encoded()
        XCTAssertNoThrow(try InstructionShard.decode(good, source: "x"))

        var magic = good
        magic[0] = UInt8(ascii: "X")
        assertDecodeError(magic, contains: "wrong magic")

        var version = good
        version[8] = 3
        assertDecodeError(version, contains: "format version 3, but this tool reads versions 1 and 2")

        assertDecodeError(good.dropLast(), contains: "size is")
        assertDecodeError(good + Data([0]), contains: "size is")
        assertDecodeError(good.prefix(10), contains: "truncated")
        assertDecodeError(good.prefix(20), contains: "too short")

        // Offsets: rows 3 -> offsets at 28, 36, 44, 52.
        var decreasing = good
        decreasing[36] = 5   // offsets 0, 5, 3, 7
        assertDecodeError(decreasing, contains: "offsets decrease at row 1")

        var nonzeroStart = good
        nonzeroStart[28] = 1
        assertDecodeError(nonzeroStart, contains: "offsets must start at 0")

        var lastOffset = good
        lastOffset[52] = 6
        assertDecodeError(lastOffset, contains: "last offset")

        // Response starts follow 8*4 offset bytes and 7*2 token bytes: 28 + 32 + 14 = 74.
        var start = good
        start[74] = 9
        assertDecodeError(start, contains: "response start 9")

        var hugeCount = good
        hugeCount[12 + 7] = 0x7f
        assertDecodeError(hugeCount, contains: "implausible counts")
    }

    func testMissingFileNamesTheCommand() {
        XCTAssertThrowsError(try InstructionShard.read(from: URL(fileURLWithPath: "/nonexistent/validation.bin"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/validation.bin"))
            XCTAssertTrue("\(error)".contains("prepare instruct"))
        }
    }

    // Version 2: several response spans per row.
    private func multi() throws -> InstructionShard {
        try InstructionShard(rows: [[1, 2, 3, 4, 5, 6], [7, 8], []], responseSpans: [[1..<2, 3..<6], [], []])
    }

    func testVersion2RoundTripAndLayout() throws {
        let shard = try multi()
        XCTAssertEqual(shard.formatVersion, 2)
        let data = shard.encoded()
        XCTAssertEqual(data.count, InstructionShard.fileSize(version: 2, rows: 3, tokens: 8, spans: 2))
        var expected: [UInt8] = Array("LLMFTINS".utf8) + [2, 0, 0, 0]
        expected += [3, 0, 0, 0, 0, 0, 0, 0] + [8, 0, 0, 0, 0, 0, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0]   // rows, tokens, spans
        for o in [0, 6, 8, 8] { expected += [UInt8(o), 0, 0, 0, 0, 0, 0, 0] }                       // offsets
        for t in 1...8 { expected += [UInt8(t), 0] }                                                 // tokens
        for o in [0, 2, 2, 2] { expected += [UInt8(o), 0, 0, 0, 0, 0, 0, 0] }                       // span offsets
        expected += [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0]                                // spans 1..<2, 3..<6
        XCTAssertEqual([UInt8](data), expected)
        let back = try InstructionShard.decode(data, source: "x")
        XCTAssertEqual(back, shard)
        XCTAssertEqual(back.responseSpans(row: 0), [1..<2, 3..<6])
        XCTAssertEqual(back.responseStart(row: 0), 1)
        XCTAssertEqual(back.responseStart(row: 1), 2)   // no response: the row's length
    }

    /// One response per row running to its end is written as version 1, byte for byte the old layout.
    func testSingleResponsesStayVersion1() throws {
        let spans = try InstructionShard(rows: [[258, 3]], responseSpans: [[1..<2]])
        XCTAssertEqual(spans.formatVersion, 1)
        XCTAssertEqual(spans.encoded(), try InstructionShard(rows: [[258, 3]], responseStarts: [1]).encoded())
        XCTAssertEqual(try InstructionShard(rows: [[1, 2, 3]], responseSpans: [[1..<2]]).formatVersion, 2)   // ends before the row
        XCTAssertEqual(try InstructionShard(rows: [[1, 2], [3]], responseSpans: [[], [0..<1]]).formatVersion, 1)
    }

    func testVersion2RejectsBadSpans() throws {
        XCTAssertThrowsError(try InstructionShard(rows: [[1, 2, 3]], responseSpans: [[0..<2, 1..<3]]))   // overlap
        XCTAssertThrowsError(try InstructionShard(rows: [[1, 2, 3]], responseSpans: [[2..<3, 0..<1]]))   // not increasing
        XCTAssertThrowsError(try InstructionShard(rows: [[1, 2, 3]], responseSpans: [[1..<4]]))          // beyond the row
        XCTAssertThrowsError(try InstructionShard(rows: [[1]], responseSpans: []))
        let good = try multi().encoded()
        // Layout: 36 header+counts, offsets 36..<68, tokens 68..<84, span offsets 84..<116, spans 116..<132.
        var beyond = good
        beyond[128] = 9   // second span ends at 9 > 6
        assertDecodeError(beyond, contains: "row 0: response span 3..<9")
        var empty = good
        empty[124] = 6    // second span 6..<6
        assertDecodeError(empty, contains: "response span 6..<6 is empty")
        var spanOffsets = good
        spanOffsets[108] = 3   // last span offset 3 but 2 spans
        assertDecodeError(spanOffsets, contains: "the last span offset is 3, but the file holds 2 spans")
        var decreasing = good
        decreasing[100] = 1    // span offsets 0, 2, 1, 2
        assertDecodeError(decreasing, contains: "span offsets decrease at row 1")
        assertDecodeError(good.dropLast(), contains: "and 2 spans need exactly")
        var v1Size = good
        v1Size[8] = 1   // read as version 1: the size no longer fits
        assertDecodeError(v1Size, contains: "size is")
    }
}

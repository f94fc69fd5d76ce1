import Foundation
import XCTest
@testable import GPT2
@testable import GPT2Weights

final class WeightsSafetensorsTests: WeightsTestCase {
    func testWriteThenReadIsBitExactAndKeepsOrderAndMetadata() throws {
        let url = dir.appendingPathComponent("a.safetensors")
        let a: [Float] = [1.5, -0.0, .leastNonzeroMagnitude, 3.4e38, -7, 0.1]
        let b: [Float] = [42]
        let empty: [Float] = []
        try SafetensorsWriter.write([("zeta", [2, 3], a), ("alpha", [1], b), ("nothing", [0, 4], empty)],
                                    metadata: ["note": "quote \" and \\ and \n é"], to: url)
        let f = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(f.tensorNames, ["zeta", "alpha", "nothing"])
        XCTAssertEqual(f.metadata, ["note": "quote \" and \\ and \n é"])
        XCTAssertEqual(f.info("zeta")?.dtype, "F32")
        XCTAssertEqual(f.info("zeta")?.shape, [2, 3])
        XCTAssertNil(f.info("missing"))
        XCTAssertEqual(try f.floats("zeta").map(\.bitPattern), a.map(\.bitPattern))
        XCTAssertEqual(try f.floats("alpha"), b)
        XCTAssertEqual(try f.floats("nothing"), [])
        // The data section starts 8-byte aligned, as the Python writer makes it.
        let bytes = try Data(contentsOf: url)
        let n = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + n) % 8, 0)
        assertMessage(errorMessage { _ = try f.floats("missing") }, contains: ["\"missing\""])
    }

    func testWriterRejectsBadInputAndLeavesNoFile() throws {
        let url = dir.appendingPathComponent("bad.safetensors")
        assertMessage(errorMessage { try SafetensorsWriter.write([("x", [2, 2], [1, 2, 3])], metadata: [:], to: url) },
                      contains: ["\"x\"", "[2, 2]", "3 values"])
        assertMessage(errorMessage { try SafetensorsWriter.write([("x", [1], [1]), ("x", [1], [2])], metadata: [:], to: url) },
                      contains: ["\"x\"", "twice"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testHalfAndBFloat16AreWidenedExactly() throws {
        // Every half-precision bit pattern against Swift's own Float16 conversion.
        #if !(os(macOS) && arch(x86_64))
        for bits in 0...UInt16.max {
            let want = Float(Float16(bitPattern: bits))
            let got = halfToFloat(bits)
            if want.isNaN { XCTAssertTrue(got.isNaN, "\(bits)") } else { XCTAssertEqual(got.bitPattern, want.bitPattern, "\(bits)") }
        }
        #endif
        let url = dir.appendingPathComponent("h.safetensors")
        let half: [UInt16] = [0x3c00, 0xc000, 0x0001, 0x7bff]  // 1, -2, smallest subnormal, 65504
        let bf: [UInt16] = [0x3f80, 0xc040]  // 1, -3
        try writeRaw([RawTensor(name: "h", dtype: "F16", shape: [4], bytes: half.withUnsafeBytes { Array($0) }),
                      RawTensor(name: "b", dtype: "BF16", shape: [2], bytes: bf.withUnsafeBytes { Array($0) }),
                      RawTensor(name: "ids", dtype: "I64", shape: [3], bytes: [Int64(5), -1, 50256].withUnsafeBytes { Array($0) }),
                      RawTensor(name: "i32", dtype: "I32", shape: [2], bytes: [Int32(7), -9].withUnsafeBytes { Array($0) })],
                     to: url)
        let f = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(try f.floats("h"), [1, -2, 0x1p-24, 65504])
        XCTAssertEqual(try f.floats("b"), [1, -3])
        XCTAssertEqual(try f.int64s("ids"), [5, -1, 50256])
        XCTAssertEqual(try f.int64s("i32"), [7, -9])
        assertMessage(errorMessage { _ = try f.floats("ids") }, contains: ["\"ids\"", "I64"])
        assertMessage(errorMessage { _ = try f.int64s("h") }, contains: ["\"h\"", "F16"])
    }

    /// Every way the format can be broken, each with a message naming the problem.
    func testCorruptFilesAreRejectedWithClearMessages() throws {
        let good = dir.appendingPathComponent("good.safetensors")
        try SafetensorsWriter.write([("a", [2], [1, 2]), ("b", [3], [3, 4, 5])], metadata: ["k": "v"], to: good)
        let bytes = try Data(contentsOf: good)
        XCTAssertNoThrow(try SafetensorsFile(contentsOf: good))

        func check(_ data: Data, _ parts: [String], line: UInt = #line) {
            let url = dir.appendingPathComponent("case-\(line).safetensors")
            try! data.write(to: url)
            let message = errorMessage({ _ = try SafetensorsFile(contentsOf: url) }, line: line)
            assertMessage(message, contains: parts + [url.lastPathComponent], line: line)
        }
        check(bytes.dropLast(4), ["truncated", "20 data bytes", "has 16"])
        check(bytes + Data([0, 0, 0, 0]), ["4 bytes after the last tensor"])
        check(Data(bytes.prefix(5)), ["too short"])
        var hugeLength = bytes
        hugeLength.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        check(hugeLength, ["header length 1099511627776", "limit"])
        var longLength = bytes
        longLength.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Data($0) })
        check(longLength, ["truncated", "header says"])

        let data = f32Bytes([1, 2, 3, 4, 5])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", data: data), ["not valid JSON"])
        check(rawSafetensors(header: "[1,2]", data: data), ["not a JSON object"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F33\",\"shape\":[5],\"data_offsets\":[0,20]}}", data: data),
              ["tensor \"a\"", "unknown dtype \"F33\""])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,20]}}", data: data),
              ["tensor \"a\"", "shape [4]", "16 bytes", "hold 20"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[-5],\"data_offsets\":[0,20]}}", data: data),
              ["tensor \"a\"", "shape is not"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20],\"x\":1}}", data: data),
              ["tensor \"a\"", "unknown field \"x\""])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[5]}}", data: data), ["tensor \"a\"", "data_offsets is missing"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}", data: data),
              ["tensor \"b\"", "overlap"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", data: data),
              ["tensor \"b\"", "gap"])
        check(rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]},\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[20,20]}}", data: data),
              ["\"a\" twice"])
        check(rawSafetensors(header: "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]}}", data: data),
              ["__metadata__", "\"k\"", "not a string"])
        // Trailing spaces in the header are allowed by the format.
        let padded = dir.appendingPathComponent("padded.safetensors")
        try rawSafetensors(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]}}   ", data: data).write(to: padded)
        XCTAssertEqual(try SafetensorsFile(contentsOf: padded).floats("a"), [1, 2, 3, 4, 5])
    }

    func testMissingFileIsAClearError() {
        let url = dir.appendingPathComponent("nope.safetensors")
        assertMessage(errorMessage { _ = try SafetensorsFile(contentsOf: url) }, contains: ["nope.safetensors", "cannot read"])
    }
}

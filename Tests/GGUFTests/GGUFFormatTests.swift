import ArtifactKit
import Foundation
import GGUF
import TestSupport
import XCTest

final class GGUFFormatTests: XCTestCase {
    /// Every metadata type written and read back unchanged, in order, with the tensor table.
    func testRoundTripOfEveryValueType() throws {
        var w = GGUFWriter()
        let values: [GGUFValue] = [.uint8(200), .int8(-100), .uint16(60000), .int16(-30000), .uint32(4_000_000_000),
                                   .int32(-2_000_000_000), .float32(1.5), .bool(true), .string("héllo"),
                                   .uint64(1 << 60), .int64(-(1 << 60)), .float64(-2.25),
                                   .strings(["a", "", "Ġt"]), .array(.array, [.int32s([1, 2]), .int32s([])])]
        for (i, v) in values.enumerated() { w.set("k\(i)", v) }
        w.add(GGUFTensor(name: "t", dims: [3, 2], type: .f32, values: [1, 2, 3, 4, 5, 6]))
        w.add(GGUFTensor(name: "u", dims: [1], type: .f32, values: [7]))
        let dir = try TestPaths.makeTempDir("gguf-format")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.gguf")
        try w.write(to: url)
        let f = try GGUFFile(contentsOf: url)
        XCTAssertEqual(f.metadata.map { $0.key }, values.indices.map { "k\($0)" })
        XCTAssertEqual(f.metadata.map { $0.value }, values)
        XCTAssertEqual(f.tensors.map(\.name), ["t", "u"])
        XCTAssertEqual(f.tensors[1].offset, 32)
        XCTAssertEqual(try f.floats(of: "t"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(f.dataOffset % 32, 0)
        XCTAssertEqual(TextFormat.fileSize(url), f.dataOffset + 64)
    }
}

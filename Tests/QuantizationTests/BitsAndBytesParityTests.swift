import Foundation
import Quantization
import TestSupport
import XCTest

/// Our NF4, double-quantized NF4 and int8 codes against bitsandbytes' on the same matrices
/// (Tests/Fixtures/quantization, written by tools/reference/make_quantization_fixture.py).
final class BitsAndBytesParityTests: XCTestCase {
    struct Case: Decodable {
        let rows: Int
        let cols: Int
        let nf4_double_offset: Float
    }

    struct Reference: Decodable {
        let cases: [String: Case]
        let nf4_code: [Float]
        let dynamic_code: [Float]
    }

    static let dir = TestPaths.fixtures.appendingPathComponent("quantization")

    func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.dir.appendingPathComponent("reference.json")))
    }

    func load<T>(_ name: String, as: T.Type) throws -> [T] {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent(name))
        return data.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
    }

    func testCodeTablesEqualBitsAndBytes() throws {
        let ref = try reference()
        XCTAssertEqual(NF4.code.map(\.bitPattern), ref.nf4_code.map(\.bitPattern))
        XCTAssertEqual(DynamicCode.signed.count, 256)
        // bitsandbytes' CPU quantizer overwrites code[0] with -1 for its search; the rest is the map.
        XCTAssertEqual(DynamicCode.signed.dropFirst().map(\.bitPattern), ref.dynamic_code.dropFirst().map(\.bitPattern))
    }

    func testNF4CodesAndAbsmaxAreBitExact() throws {
        for (name, c) in try reference().cases {
            let input = try load("\(name).input.f32", as: Float.self)
            let (packed, absmax) = input.withUnsafeBufferPointer { NF4.quantize($0) }
            XCTAssertEqual(packed, try load("\(name).nf4.codes.u8", as: UInt8.self), name)
            XCTAssertEqual(absmax.map(\.bitPattern), try load("\(name).nf4.absmax.f32", as: Float.self).map(\.bitPattern), name)
            // Dequantized through the kernel, as a whole-matrix tile (ragged: blocks straddle rows).
            let m = QuantizedLinear(QuantizedMatrix(rows: c.rows, cols: c.cols,
                                                    storage: .nf4(packed: packed, scales: CompressedScales(codes: [], absmax2: [], offset: 0), blockSize: 64)),
                                    blockScales: absmax)
            var out = [Float](repeating: 0, count: c.rows * c.cols)
            m.dequantize(rows: 0..<c.rows, into: &out)
            XCTAssertEqual(out.map(\.bitPattern), try load("\(name).nf4.dequant.f32", as: Float.self).map(\.bitPattern), name)
        }
    }

    /// Double quantization: the offset (a float32 mean; ours sums in double) to 1e-6 relative;
    /// the 8-bit codes equal bitsandbytes' except where its CPU binary search (BinSearch's
    /// "Direct2" lookup) lands one code step off on a near-tie: then adjacent.
    func testDoubleQuantizedScalesMatch() throws {
        var equal = 0, total = 0
        for (name, c) in try reference().cases {
            let absmax = try load("\(name).nf4.absmax.f32", as: Float.self)
            let ours = CompressedScales(compressing: absmax)
            XCTAssertEqual(ours.offset, c.nf4_double_offset, accuracy: 1e-6 * abs(c.nf4_double_offset), name)
            let theirs = try load("\(name).nf4dq.absmax.u8", as: UInt8.self)
            XCTAssertEqual(ours.absmax2.map(\.bitPattern), try load("\(name).nf4dq.absmax2.f32", as: Float.self).map(\.bitPattern), name)
            XCTAssertEqual(ours.codes.count, theirs.count)
            for (a, b) in zip(ours.codes, theirs) {
                XCTAssertLessThanOrEqual(abs(Int(a) - Int(b)), 1, name)
                if a == b { equal += 1 }
                total += 1
            }
        }
        XCTAssertGreaterThanOrEqual(Double(equal) / Double(total), 0.99, "\(equal) of \(total) absmax codes equal")
    }

    func testInt8RowsAreBitExact() throws {
        for (name, c) in try reference().cases {
            let input = try load("\(name).input.f32", as: Float.self)
            let (codes, scales) = input.withUnsafeBufferPointer { Int8Rows.quantize($0, rows: c.rows, cols: c.cols) }
            XCTAssertEqual(codes, try load("\(name).int8.codes.i8", as: Int8.self), name)
            XCTAssertEqual(scales.map(\.bitPattern), try load("\(name).int8.scales.f32", as: Float.self).map(\.bitPattern), name)
        }
    }
}

import CQuantKernels
import Foundation

/// A `QuantizedMatrix` made ready for products: NF4 block scales decompressed to float32 (one
/// float per 64 weights, 1/8 of the packed codes' size) and int8 row scales divided by 127. The
/// kernels work on row ranges, so the caller can split the output channels over cores.
public final class QuantizedLinear: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let type: QuantizationType
    let nf4Packed: [UInt8]
    let int8Codes: [Int8]
    let scales: [Float]
    let block: Int
    /// The matrix as stored (compressed scales included), for writing it back to a file.
    public let matrix: QuantizedMatrix

    /// `blockScales` replaces the NF4 scales stored in `m` (exact float32 absmax values, e.g.
    /// before double quantization).
    public init(_ m: QuantizedMatrix, blockScales: [Float]? = nil) {
        matrix = m
        rows = m.rows
        cols = m.cols
        type = m.type
        switch m.storage {
        case .nf4(let packed, let compressed, let blockSize):
            nf4Packed = packed
            int8Codes = []
            scales = blockScales ?? compressed.decompressed()
            block = blockSize
        case .int8(let codes, let absmax):
            nf4Packed = []
            int8Codes = codes
            scales = absmax.map { $0 / 127 }
            block = 0
        }
    }

    /// Resident bytes (codes and float scales).
    public var byteCount: Int { nf4Packed.count + int8Codes.count + 4 * scales.count }

    /// Writes rows `range` of the float matrix into `out` ([range.count, cols], row-major).
    public func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        dequantize(rows: range, columns: 0..<cols, into: out)
    }

    /// Writes the block rows `rows` x columns `columns` of the float matrix into `out`
    /// ([rows.count, columns.count], row-major).
    public func dequantize(rows: Range<Int>, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .nf4:
            qk_nf4_dequantize_block(nf4Packed, scales, NF4.code, block, cols, rows.lowerBound, rows.count,
                                    columns.lowerBound, columns.count, out)
        case .int8:
            qk_int8_dequantize_block(int8Codes, scales, cols, rows.lowerBound, rows.count, columns.lowerBound, columns.count, out)
        }
    }

    /// Whether `matvec` can read the codes directly (NF4 needs whole blocks per row).
    public var hasDirectMatvec: Bool { type == .int8 || (cols % block == 0 && block % 16 == 0) }

    /// y[r] = sum_c W[r, c] x[c] (added to y[r] when `accumulate`) for the rows in `range`.
    /// `prepared` is `prepare(x)` (NF4 reads x split into even and odd elements).
    public func matvec(_ prepared: PreparedVector, rows range: Range<Int>, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        precondition(hasDirectMatvec)
        switch type {
        case .nf4:
            qk_nf4_matvec(nf4Packed, scales, NF4.code, block, cols, range.lowerBound, range.count,
                          prepared.even, prepared.odd, prepared.planes, y, accumulate ? 1 : 0)
        case .int8:
            qk_int8_matvec(int8Codes, scales, cols, range.lowerBound, range.count, prepared.x, y, accumulate ? 1 : 0)
        }
    }

    /// x in the form `matvec` reads; make it once per input vector, share it over row ranges.
    public func prepare(_ x: UnsafePointer<Float>) -> PreparedVector {
        let layout: PreparedVector.Layout = type == .int8 ? .asIs : qk_nf4_uses_planes(block, cols) != 0 ? .planes : .evenOdd
        return PreparedVector(x, cols: cols, layout: layout)
    }

    /// Whether `product` can multiply a few input rows at once reading the codes directly (on
    /// AVX-512; NF4 with blocks and rows of whole 64-weight groups, int8 rows of whole 16-byte groups).
    public var hasDirectProduct: Bool {
        type == .nf4 ? qk_nf4_uses_planes(block, cols) != 0 : qk_int8_has_matmul(cols) != 0
    }

    /// `count` input rows ([count, cols], row-major) in the form `product` reads.
    public func prepare(_ x: UnsafePointer<Float>, rows count: Int) -> PreparedVector {
        precondition(hasDirectProduct)
        return PreparedVector(x, cols: cols, layout: type == .nf4 ? .planes : .asIs, rows: count)
    }

    /// Y[m, r] = sum_c W[r, c] X[m, c] (added to Y[m, r] when `accumulate`) for every prepared row
    /// m of X and the output channels r in `range`; Y[m, r] is y[m * ldy + r]. Each weight is
    /// unpacked once for all rows of X, so a short prompt reads the codes directly too.
    public func product(_ prepared: PreparedVector, outputs range: Range<Int>, y: UnsafeMutablePointer<Float>, ldy: Int,
                        accumulate: Bool) {
        precondition(hasDirectProduct)
        switch type {
        case .nf4:
            qk_nf4_matmul(nf4Packed, scales, NF4.code, block, cols, range.lowerBound, range.count, prepared.planes,
                          prepared.rows, y, ldy, accumulate ? 1 : 0)
        case .int8:
            qk_int8_matmul(int8Codes, scales, cols, range.lowerBound, range.count, prepared.x, prepared.rows, y, ldy,
                           accumulate ? 1 : 0)
        }
    }
}

/// An input vector (or `rows` of them) as the NF4 kernels read it: reordered to the order in
/// which the AVX-512 kernel unpacks 128 codes from one 64-byte load (`planes`, see
/// quant_kernels.c), or else split into even and odd elements (the other kernels pair the high
/// nibble of each byte with the even element and the low nibble with the odd one). The int8
/// kernel reads x itself.
public final class PreparedVector {
    let x: UnsafePointer<Float>
    let rows: Int
    let even: UnsafeMutablePointer<Float>?
    let odd: UnsafeMutablePointer<Float>?
    let planes: UnsafeMutablePointer<Float>?

    enum Layout { case asIs, planes, evenOdd }

    init(_ x: UnsafePointer<Float>, cols: Int, layout: Layout, rows: Int = 1) {
        precondition(rows == 1 || layout != .evenOdd)
        self.x = x
        self.rows = rows
        let stride = qk_nf4_prepared_count(cols)
        planes = layout == .planes ? .allocate(capacity: rows * stride) : nil
        even = layout == .evenOdd ? .allocate(capacity: cols / 2 + 1) : nil
        odd = layout == .evenOdd ? .allocate(capacity: cols / 2 + 1) : nil
        if let planes { for m in 0..<rows { qk_nf4_prepare(x + m * cols, cols, planes + m * stride) } }
        if let even, let odd { qk_deinterleave(x, cols, even, odd) }
    }

    deinit {
        even?.deallocate()
        odd?.deallocate()
        planes?.deallocate()
    }
}

import Foundation

/// QLoRA's double quantization (paper, section 3): the float32 absmax of every 64-element NF4
/// block costs 32/64 = 0.5 bits per weight; quantizing those constants again brings it to
/// 8/64 + 32/(64·256) ≈ 0.127 bits. The absmax values are all positive, so their mean (the
/// offset) is subtracted first to centre them for the signed 8-bit dynamic code; they are then
/// quantized in blocks of 256 with one float32 absmax per block (`DynamicCode.quantize`).
///
/// Dequantized: absmax[b] = dynamicCode[codes[b]] · absmax2[b / 256] + offset.
public struct CompressedScales: Equatable, Sendable {
    public static let blockSize = 256
    public var codes: [UInt8]
    public var absmax2: [Float]
    public var offset: Float

    public init(codes: [UInt8], absmax2: [Float], offset: Float) {
        self.codes = codes
        self.absmax2 = absmax2
        self.offset = offset
    }

    /// Compresses block scales; the offset is their mean, summed in double precision.
    public init(compressing scales: [Float]) {
        let mean = Float(scales.reduce(0.0) { $0 + Double($1) } / Double(max(1, scales.count)))
        let (codes, absmax2) = DynamicCode.quantize(scales.map { $0 - mean }, blockSize: Self.blockSize)
        self.init(codes: codes, absmax2: absmax2, offset: mean)
    }

    /// The scale of block b.
    @inline(__always)
    public func scale(_ b: Int) -> Float {
        DynamicCode.signed[Int(codes[b])] * absmax2[b / Self.blockSize] + offset
    }

    public func decompressed() -> [Float] { (0..<codes.count).map(scale) }
}

import Foundation

/// NF4, the 4-bit NormalFloat code of the QLoRA paper (Dettmers et al. 2023, section 3), as
/// bitsandbytes stores it.
///
/// Pretrained weights are close to zero-mean normal, so an information-theoretically good 4-bit
/// code puts equal probability mass in each of its bins: its values are quantiles of N(0, 1),
/// scaled into [-1, 1]. The paper makes the code asymmetric so that 0 is exactly representable:
/// 8 values from the quantiles of the positive half (offset 0.9677 from the tails), 7 from the
/// negative half, and 0, each side divided by its largest quantile so the ends are exactly -1
/// and 1. The 16 numbers below are those quantiles as float32, index order = code order
/// (ascending), the same table as `bitsandbytes.functional.get_4bit_type("nf4")`
/// (Tests/Fixtures/quantization/reference.json checks every bit).
///
/// A tensor is quantized in blocks of `blockSize` consecutive elements of its row-major
/// storage. Each block keeps its absolute maximum m (float32); an element x becomes the index of
/// the code value nearest to x / m. Dequantized, it is code[q] * m. Two indices share a byte,
/// the first element in the high nibble.
public enum NF4 {
    public static let code: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    /// The block size of bitsandbytes' default and of the QLoRA paper.
    public static let blockSize = 64

    /// Decision boundaries between neighbouring code values, (code[k] + code[k+1]) / 2 in float32.
    static let bounds: [Float] = (0..<15).map { (code[$0] + code[$0 + 1]) / 2 }

    /// The index of the code value for a scaled element s in [-1, 1]: the number of boundaries
    /// strictly below s, so a value exactly on a boundary goes to the lower code (the rule of
    /// torch.bucketize, which bitsandbytes' CPU quantizer uses).
    @inline(__always)
    static func index(of s: Float) -> UInt8 {
        var i = 0
        while i < 15 && bounds[i] < s { i += 1 }
        return UInt8(i)
    }

    /// Quantizes `values` (the row-major storage of a tensor) in blocks of `blockSize`; the last
    /// block may be shorter (bitsandbytes' rule: blocks run over the flat storage, not per row).
    /// Returns the packed indices (an odd count is padded with the index of 0.0) and the
    /// absmax of every block.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, blockSize: Int = blockSize) -> (packed: [UInt8], absmax: [Float]) {
        let n = values.count
        let blocks = (n + blockSize - 1) / blockSize
        var absmax = [Float](repeating: 0, count: blocks)
        var indices = [UInt8](repeating: 7, count: n + n % 2)
        for b in 0..<blocks {
            let range = b * blockSize..<min(n, (b + 1) * blockSize)
            var m: Float = 0
            for i in range { m = max(m, abs(values[i])) }
            absmax[b] = m
            let inverse = 1 / max(m, 1e-38)
            for i in range { indices[i] = index(of: min(1, max(-1, values[i] * inverse))) }
        }
        var packed = [UInt8](repeating: 0, count: indices.count / 2)
        for j in packed.indices { packed[j] = indices[2 * j] << 4 | indices[2 * j + 1] }
        return (packed, absmax)
    }

    /// Element i of a packed tensor: the high nibble of byte i/2 for even i, the low for odd.
    @inline(__always)
    public static func index(_ packed: UnsafePointer<UInt8>, at i: Int) -> Int {
        let byte = packed[i >> 1]
        return Int(i & 1 == 0 ? byte >> 4 : byte & 0x0F)
    }
}

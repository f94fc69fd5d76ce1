import Foundation

/// Float32 values to the bytes of a ggml tensor type, and back.
///
/// F16: IEEE 754 half precision, rounded to nearest with ties to even (ggml's GGML_FP32_TO_FP16
/// and numpy's `astype(np.float16)` do the same). Values beyond 65504 become infinity, which
/// the exporter refuses beforehand.
///
/// Q8_0 (ggml's `quantize_row_q8_0_ref`, gguf-py's `Q8_0.quantize_blocks`): each block of 32
/// consecutive values x gets
///     amax = max |x_i|,  d = amax / 127,  id = (d == 0 ? 0 : 1 / d),  q_i = roundf(x_i * id)
/// computed in float32, with roundf rounding halves away from zero; d is stored as f16 and
/// q_i as int8 (|q_i| <= 127 since |x_i * id| <= 127 up to rounding). Dequantized:
/// x_i ~ f16(d) * q_i, an error of at most d/2 per value plus the f16 rounding of d.
public enum TensorEncoding {
    /// The bytes of `values` as `type`. For Q8_0, `values.count` must be a multiple of 32 and the
    /// blocks run over consecutive values (rows of ne[0] values, ne[0] a multiple of 32).
    public static func encode(_ values: [Float], as type: GGMLType) -> Data {
        switch type {
        case .f32:
            return values.withUnsafeBytes { Data($0) }
        case .f16:
            let halves = values.map { Float16($0).bitPattern.littleEndian }
            return halves.withUnsafeBytes { Data($0) }
        case .q8_0:
            precondition(values.count % 32 == 0, "Q8_0 needs a multiple of 32 values")
            var out = Data(count: values.count / 32 * 34)
            out.withUnsafeMutableBytes { raw in
                let dst = raw.bindMemory(to: UInt8.self)
                values.withUnsafeBufferPointer { src in
                    for b in 0..<(values.count / 32) {
                        quantizeQ8_0Block(src.baseAddress! + b * 32, into: dst.baseAddress! + b * 34)
                    }
                }
            }
            return out
        }
    }

    /// One Q8_0 block: 32 floats in, 34 bytes out (f16 d, then 32 int8).
    static func quantizeQ8_0Block(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt8>) {
        var amax: Float = 0
        for i in 0..<32 { amax = max(amax, abs(x[i])) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        let dBits = Float16(d).bitPattern
        out[0] = UInt8(dBits & 0xFF)
        out[1] = UInt8(dBits >> 8)
        for i in 0..<32 {
            let q = (x[i] * id).rounded(.toNearestOrAwayFromZero)
            out[2 + i] = UInt8(bitPattern: Int8(q))
        }
    }

    /// Float32 values from the bytes of a tensor of `type` holding `count` elements.
    public static func decode(_ bytes: Data, as type: GGMLType, count: Int) -> [Float] {
        precondition(bytes.count >= type.byteCount(elements: count), "tensor bytes too short")
        return bytes.withUnsafeBytes { raw -> [Float] in
            let p = raw.bindMemory(to: UInt8.self).baseAddress!
            func half(_ at: Int) -> Float {
                Float(Float16(bitPattern: UInt16(p[at]) | UInt16(p[at + 1]) << 8))
            }
            switch type {
            case .f32:
                return (0..<count).map { i in
                    Float(bitPattern: UInt32(p[4 * i]) | UInt32(p[4 * i + 1]) << 8 | UInt32(p[4 * i + 2]) << 16 | UInt32(p[4 * i + 3]) << 24)
                }
            case .f16:
                return (0..<count).map { half(2 * $0) }
            case .q8_0:
                return (0..<count).map { i in
                    let block = i / 32 * 34
                    return half(block) * Float(Int8(bitPattern: p[block + 2 + i % 32]))
                }
            }
        }
    }
}

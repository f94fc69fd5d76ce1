import Foundation

/// bitsandbytes' signed 8-bit "dynamic" code (Dettmers et al. 2022, 8-bit optimizers, section
/// 2.2; `bitsandbytes.functional.create_dynamic_map(signed=True)`), which QLoRA's double
/// quantization uses for the block absmax values.
///
/// A code value is sign · 10^-e · f: the exponent e in 0...6 picks a decade, and decade i (from
/// 10^-6 up to 10^0) is split into 2^i linearly spaced fractions: the midpoints of
/// linspace(0.1, 1, 2^i + 1). Small decades get few values, the top decade most. Both signs of
/// 7 decades give 2 · (1 + 2 + ... + 64) = 254 values, plus 0 and 1: 256, sorted ascending.
public enum DynamicCode {
    public static let signed: [Float] = {
        var values: [Float] = []
        for i in 0..<7 {
            let fractions = linspaceFloat32(0.1, 1, count: (1 << i) + 1)
            let scale = pow(10.0, Double(i - 6))
            for k in 0..<(fractions.count - 1) {
                let mean = (fractions[k] + fractions[k + 1]) / 2
                values.append(Float(scale) * mean)
                values.append(-Float(scale) * mean)
            }
        }
        values.append(0)
        values.append(1)
        return values.sorted()
    }()

    /// torch.linspace in float32: start + i·step for the first half, end - (n-1-i)·step for the
    /// second, step = (end - start) / (n - 1), each a fused multiply-add (one rounding), as its
    /// vectorised CPU kernel computes it.
    static func linspaceFloat32(_ start: Float, _ end: Float, count n: Int) -> [Float] {
        let step = (end - start) / Float(n - 1)
        return (0..<n).map { i in
            i < n / 2 ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// The code index for a normalised value v in [-1, 1]: the largest code value <= v (with the
    /// code's smallest value taken as -1, as bitsandbytes' CPU quantizer does), moved one up when
    /// the next value is strictly nearer.
    static func index(of v: Float, code: [Float]) -> UInt8 {
        var lo = 0, hi = code.count - 1
        if v < -1 { return 0 }
        while lo < hi {   // largest i with code'[i] <= v, code'[0] = -1
            let mid = (lo + hi + 1) / 2
            if (mid == 0 ? -1 : code[mid]) <= v { lo = mid } else { hi = mid - 1 }
        }
        if lo < code.count - 1 && abs(v - code[lo + 1]) < abs(v - (lo == 0 ? -1 : code[lo])) { lo += 1 }
        return UInt8(lo)
    }

    /// Blockwise 8-bit quantization of `values`: per block of `blockSize` its absmax m, and per
    /// element the index of v / m in the code.
    public static func quantize(_ values: [Float], blockSize: Int = 256) -> (codes: [UInt8], absmax: [Float]) {
        let code = signed
        let blocks = (values.count + blockSize - 1) / blockSize
        var absmax = [Float](repeating: 0, count: blocks)
        var codes = [UInt8](repeating: 0, count: values.count)
        for b in 0..<blocks {
            let range = b * blockSize..<min(values.count, (b + 1) * blockSize)
            let m = values[range].reduce(0) { max($0, abs($1)) }
            absmax[b] = m
            for i in range { codes[i] = index(of: m == 0 ? 0 : values[i] / m, code: code) }
        }
        return (codes, absmax)
    }
}

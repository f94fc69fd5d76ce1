import Foundation

/// Vector-wise int8 quantization (LLM.int8, Dettmers et al. 2022, section 3.2, without the
/// outlier split; `bitsandbytes.functional.int8_vectorwise_quant` with threshold 0): every row
/// (one output channel of a Linear weight) keeps its absmax s, and an element x becomes
/// round-half-even(x · (127 / s)), so the row's largest element maps to ±127. Dequantized:
/// q · s / 127. A row of zeros has s = 0 and codes 0.
public enum Int8Rows {
    public static func quantize(_ values: UnsafeBufferPointer<Float>, rows: Int, cols: Int) -> (codes: [Int8], scales: [Float]) {
        precondition(values.count == rows * cols)
        var codes = [Int8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var s: Float = 0
            for c in 0..<cols { s = max(s, abs(values[r * cols + c])) }
            scales[r] = s
            guard s > 0 else { continue }
            let factor: Float = 127 / s
            for c in 0..<cols {
                codes[r * cols + c] = Int8((values[r * cols + c] * factor).rounded(.toNearestOrEven))
            }
        }
        return (codes, scales)
    }
}

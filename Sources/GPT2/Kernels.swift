import COpenBLAS
import Foundation

// Low-level numerical kernels shared by the forward, backward and generation code.
// Every matrix product goes through cblas_sgemm; everything else is a plain loop over contiguous
// Float memory (the optimiser vectorises these in release builds) spread over the cores with
// `parallelRows`.

/// A heap block of Floats with a stable address, so hot loops never touch Swift arrays (no
/// copy-on-write checks, no exclusivity checks).
final class FloatBuffer {
    let count: Int
    let base: UnsafeMutablePointer<Float>

    init(count: Int, zeroed: Bool = true) {
        self.count = count
        base = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        if zeroed { base.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit { base.deallocate() }

    func zero() { base.update(repeating: 0, count: count) }
    var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// The number of worker threads for our own loops (the machine's cores).
let computeThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// OpenBLAS's thread count is global: big products use every core, while sgemms issued from inside
/// `parallelRows` must run single-threaded so the two levels of threading do not oversubscribe.
enum BLASThreads {
    nonisolated(unsafe) private static var current = -1
    static func set(_ n: Int) {
        if current != n {
            openblas_set_num_threads(Int32(n))
            current = n
        }
    }
}

/// Runs `body(range)` over `count` items split into one contiguous chunk per core. Small jobs
/// (below `grain` items) run inline to avoid dispatch overhead.
@inline(__always)
func parallelRows(_ count: Int, grain: Int = 16, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let chunks = min(computeThreads, max(1, count / max(grain, 1)))
    if chunks <= 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = count * c / chunks
        let hi = count * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// Row-major C = alpha * op(A) * op(B) + beta * C, with op(A) [M, K], op(B) [K, N].
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int, alpha: Float = 1,
           A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
           beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    if M == 0 || N == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
}

/// y[rows, cols] = x @ W + b, with W [in, out] row-major (Hugging Face Conv1D layout).
/// The bias is broadcast into y first so the sgemm accumulates onto it (beta = 1).
func linearForward(_ x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
    if let bias {
        parallelRows(rows, grain: 64) { r in
            for i in r { (out + i * outDim).update(from: bias, count: outDim) }
        }
    }
    BLASThreads.set(computeThreads)
    sgemm(M: rows, N: outDim, K: inDim, A: x, lda: inDim, B: weight, ldb: outDim,
          beta: bias == nil ? 0 : 1, C: out, ldc: outDim)
}

/// Backward of `linearForward`: dX (+)= dY @ W^T, dW += X^T @ dY, db += column sums of dY.
/// Pass nil for the gradients that are not needed.
func linearBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                    weight: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?, accumulateDX: Bool = false,
                    dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
    BLASThreads.set(computeThreads)
    if let dX {
        sgemm(transB: true, M: rows, N: inDim, K: outDim, A: dY, lda: outDim, B: weight, ldb: outDim,
              beta: accumulateDX ? 1 : 0, C: dX, ldc: inDim)
    }
    if let dW {
        sgemm(transA: true, M: inDim, N: outDim, K: rows, A: x, lda: inDim, B: dY, ldb: outDim,
              beta: 1, C: dW, ldc: outDim)
    }
    if let dB { columnSumsAccumulate(dY, rows: rows, cols: outDim, into: dB) }
}

/// into[j] += sum_i m[i, j]; split over column blocks so each thread owns its outputs.
func columnSumsAccumulate(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into: UnsafeMutablePointer<Float>) {
    parallelRows(cols, grain: 256) { cr in
        for i in 0..<rows {
            let row = m + i * cols
            for j in cr { into[j] += row[j] }
        }
    }
}

// MARK: LayerNorm (eps 1e-5, biased variance, as torch.nn.LayerNorm and the book's LayerNorm)

let layerNormEps: Float = 1e-5

/// out = (x - mean) / sqrt(var + eps) * w + b per row; saves mean and 1/std for the backward pass.
func layerNormForward(_ x: UnsafePointer<Float>, rows: Int, dim C: Int, weight: UnsafePointer<Float>,
                      bias: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?) {
    parallelRows(rows, grain: 8) { r in
        for i in r {
            let xi = x + i * C
            var sum: Float = 0
            for j in 0..<C { sum += xi[j] }
            let m = sum / Float(C)
            var sq: Float = 0
            for j in 0..<C {
                let d = xi[j] - m
                sq += d * d
            }
            let s = 1 / (sq / Float(C) + layerNormEps).squareRoot()
            let oi = out + i * C
            for j in 0..<C { oi[j] = (xi[j] - m) * s * weight[j] + bias[j] }
            mean?[i] = m
            rstd?[i] = s
        }
    }
}

/// dX (+)= LayerNorm backward; dW, dB accumulate (optional: only when the norm is trainable).
func layerNormBackward(dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                       rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, dim C: Int,
                       dX: UnsafeMutablePointer<Float>?, accumulateDX: Bool,
                       dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
    if let dX {
        parallelRows(rows, grain: 8) { r in
            for i in r {
                let xi = x + i * C, gi = dOut + i * C, di = dX + i * C
                let m = mean[i], s = rstd[i]
                var sumG: Float = 0, sumGN: Float = 0
                for j in 0..<C {
                    let g = gi[j] * weight[j]
                    sumG += g
                    sumGN += g * (xi[j] - m) * s
                }
                let meanG = sumG / Float(C), meanGN = sumGN / Float(C)
                if accumulateDX {
                    for j in 0..<C {
                        let n = (xi[j] - m) * s
                        di[j] += s * (gi[j] * weight[j] - meanG - n * meanGN)
                    }
                } else {
                    for j in 0..<C {
                        let n = (xi[j] - m) * s
                        di[j] = s * (gi[j] * weight[j] - meanG - n * meanGN)
                    }
                }
            }
        }
    }
    if dW != nil || dB != nil {
        parallelRows(C, grain: 64) { cr in
            for i in 0..<rows {
                let xi = x + i * C, gi = dOut + i * C
                let m = mean[i], s = rstd[i]
                if let dW { for j in cr { dW[j] += gi[j] * (xi[j] - m) * s } }
                if let dB { for j in cr { dB[j] += gi[j] } }
            }
        }
    }
}

// MARK: GELU, the book's (and GPT-2's "gelu_new") tanh approximation

private let geluScale: Float = (2 / Float.pi).squareRoot()

func geluForward(_ x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
    parallelRows(count, grain: 4096) { r in
        for i in r {
            let v = x[i]
            out[i] = 0.5 * v * (1 + tanhf(geluScale * (v + 0.044715 * v * v * v)))
        }
    }
}

/// dX = dOut * gelu'(x), written in place over dOut's buffer when `dX == dOut`.
func geluBackward(_ x: UnsafePointer<Float>, dOut: UnsafePointer<Float>, count: Int, dX: UnsafeMutablePointer<Float>) {
    parallelRows(count, grain: 4096) { r in
        for i in r {
            let v = x[i]
            let inner = geluScale * (v + 0.044715 * v * v * v)
            let t = tanhf(inner)
            let sech2 = 1 - t * t
            let d = 0.5 * (1 + t) + 0.5 * v * sech2 * geluScale * (1 + 3 * 0.044715 * v * v)
            dX[i] = dOut[i] * d
        }
    }
}

// MARK: Elementwise helpers

/// a[i] += b[i]
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    parallelRows(count, grain: 8192) { r in
        for i in r { a[i] += b[i] }
    }
}

/// out[i] = a[i] + b[i] * (mask?[i] ?? 1)
func addScaled(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, mask: UnsafePointer<Float>?, count: Int,
               out: UnsafeMutablePointer<Float>) {
    parallelRows(count, grain: 8192) { r in
        if let mask {
            for i in r { out[i] = a[i] + b[i] * mask[i] }
        } else {
            for i in r { out[i] = a[i] + b[i] }
        }
    }
}

/// x[i] *= mask[i]
func multiplyInPlace(_ x: UnsafeMutablePointer<Float>, _ mask: UnsafePointer<Float>, count: Int) {
    parallelRows(count, grain: 8192) { r in
        for i in r { x[i] *= mask[i] }
    }
}

// MARK: Random numbers (seeded, reproducible; not cryptographic)

/// SplitMix64: small, fast and good enough for dropout masks and sampling.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
}

/// Fills `mask` with inverted-dropout scales: 0 with probability p, else 1 / (1 - p).
func fillDropoutMask(_ mask: UnsafeMutablePointer<Float>, count: Int, p: Float, rng: inout SeededRandom) {
    let keep = 1 / (1 - p)
    for i in 0..<count { mask[i] = rng.nextUnitFloat() < p ? 0 : keep }
}

import ArtifactKit
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

    /// `zeroed` memory comes from calloc, so pages that are never written (gradients and AdamW
    /// moments of frozen tensors) are never made resident.
    init(count: Int, zeroed: Bool = true) {
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = zeroed ? calloc(max(count, 1), MemoryLayout<Float>.stride) : malloc(bytes)
        guard let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(base) }

    func zero() { base.update(repeating: 0, count: count) }
    var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// The number of worker threads for our own loops and OpenBLAS: `LLMFT_THREADS` when set,
/// otherwise the cores this process may run on (its CPU affinity: mpirun binds each rank of a
/// job to its own cores, and `taskset` narrows it too).
let computeThreads: Int = {
    if let v = ProcessInfo.processInfo.environment["LLMFT_THREADS"], let n = Int(v), n > 0 { return n }
    // Linux's "Cpus_allowed:" line is the affinity mask in hex, in comma-separated 32-bit words.
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) {
        let n = line.dropFirst("Cpus_allowed:".count).compactMap { $0.hexDigitValue }.map(\.nonzeroBitCount).reduce(0, +)
        if n > 0 { return min(n, max(1, ProcessInfo.processInfo.activeProcessorCount)) }
    }
    return max(1, ProcessInfo.processInfo.activeProcessorCount)
}()

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

/// How the big products use the cores. `.blas` lets OpenBLAS thread each sgemm itself; `.split`
/// runs OpenBLAS single-threaded and gives each core its own slice of the output rows (or
/// columns, for short products), so our loops and the products share one set of threads: with
/// OpenBLAS's own pool, its idle workers spin in sched_yield while our elementwise loops run,
/// and on a 2-core machine the two pools take turns on the cores. `LLMFT_GEMM_THREADS=blas|split`
/// chooses (for measurements); the default is the faster one on our machines (docs/benchmarks.md).
enum GEMMThreading {
    case blas, split
    static let current: GEMMThreading = ProcessInfo.processInfo.environment["LLMFT_GEMM_THREADS"] == "blas" ? .blas : .split
}

/// `sgemm` over every core: see `GEMMThreading`. Slices are whole rows of C (or whole columns
/// when there are too few rows), so each element is computed exactly as by one sgemm call over
/// the whole product only if OpenBLAS's kernel does not depend on the slice; results agree to
/// float rounding (the parity tests hold either way).
func parallelSgemm(transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int, alpha: Float = 1,
                   A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                   beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    if M == 0 || N == 0 { return }
    let threads = computeThreads
    if GEMMThreading.current == .blas || threads == 1 {
        BLASThreads.set(threads)
        sgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
              beta: beta, C: C, ldc: ldc)
        return
    }
    BLASThreads.set(1)
    // Rows when each core gets at least 32 of them (packing B once per core is then cheap next to
    // the product); columns otherwise, in multiples of 16 to keep OpenBLAS's kernels on full tiles.
    if M >= 32 * threads {
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = M * t / threads, hi = M * (t + 1) / threads
            if lo == hi { return }
            sgemm(transA: transA, transB: transB, M: hi - lo, N: N, K: K, alpha: alpha,
                  A: transA ? A + lo : A + lo * lda, lda: lda, B: B, ldb: ldb, beta: beta, C: C + lo * ldc, ldc: ldc)
        }
    } else if N >= 64 * threads {
        let blocks = (N + 15) / 16
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = min(N, blocks * t / threads * 16), hi = min(N, blocks * (t + 1) / threads * 16)
            if lo >= hi { return }
            sgemm(transA: transA, transB: transB, M: M, N: hi - lo, K: K, alpha: alpha, A: A, lda: lda,
                  B: transB ? B + lo * ldb : B + lo, ldb: ldb, beta: beta, C: C + lo, ldc: ldc)
        }
    } else {
        sgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
              beta: beta, C: C, ldc: ldc)
    }
}

/// Matrix-vector product over every core, OpenBLAS single-threaded (see `GEMMThreading`): A is
/// row-major [rows, cols]; `transposed` computes y[cols] = A^T x (x @ W for a [in, out] weight),
/// otherwise y[rows] = A x. Each core streams its own slice of A and owns its slice of y, so the
/// decoding step's other loops and these products share one set of threads (OpenBLAS's own pool
/// would spin in sched_yield between the products, and its thread count would be switched
/// several times per layer).
func parallelSgemv(transposed: Bool, rows: Int, cols: Int, A: UnsafePointer<Float>, x: UnsafePointer<Float>,
                   beta: Float, y: UnsafeMutablePointer<Float>) {
    let outputs = transposed ? cols : rows
    if outputs == 0 { return }
    let threads = GEMMThreading.current == .blas ? 1 : computeThreads
    if threads == 1 || outputs < 256 * threads {
        BLASThreads.set(GEMMThreading.current == .blas ? computeThreads : 1)
        cblas_sgemv(CblasRowMajor, transposed ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols), 1, A, Int32(cols),
                    x, 1, beta, y, 1)
        return
    }
    BLASThreads.set(1)
    // Slices in multiples of 16 outputs (whole cache lines of y, aligned vector loads of A's rows).
    let blocks = (outputs + 15) / 16
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        let lo = min(outputs, blocks * t / threads * 16), hi = min(outputs, blocks * (t + 1) / threads * 16)
        if lo >= hi { return }
        if transposed {
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(hi - lo), 1, A + lo, Int32(cols), x, 1, beta, y + lo, 1)
        } else {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(hi - lo), Int32(cols), 1, A + lo * cols, Int32(cols), x, 1,
                        beta, y + lo, 1)
        }
    }
}

/// y[rows, cols] = x @ W + b, with W [in, out] row-major (Hugging Face Conv1D layout).
/// The bias is broadcast into y first so the sgemm accumulates onto it (beta = 1).
func linearForward(_ x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
    if let bias { broadcastRows(bias, rows: rows, cols: outDim, into: out) }
    if rows == 1 {
        // One row (single-token decoding) is a matrix-vector product: OpenBLAS 0.3.21's sgemm
        // would pack the whole weight matrix for it, sgemv streams it (2.5x faster here).
        parallelSgemv(transposed: true, rows: inDim, cols: outDim, A: weight, x: x, beta: bias == nil ? 0 : 1, y: out)
        return
    }
    parallelSgemm(M: rows, N: outDim, K: inDim, A: x, lda: inDim, B: weight, ldb: outDim,
                  beta: bias == nil ? 0 : 1, C: out, ldc: outDim)
}

/// out[i, :] = row for every i < rows: a bias laid under a product that accumulates (beta = 1).
func broadcastRows(_ row: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    parallelRows(rows, grain: 64) { r in
        for i in r { (out + i * cols).update(from: row, count: cols) }
    }
}

/// Backward of `linearForward`: dX (+)= dY @ W^T, dW += X^T @ dY, db += column sums of dY.
/// Pass nil for the gradients that are not needed.
func linearBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                    weight: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>?, accumulateDX: Bool = false,
                    dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
    if let dX {
        parallelSgemm(transB: true, M: rows, N: inDim, K: outDim, A: dY, lda: outDim, B: weight, ldb: outDim,
              beta: accumulateDX ? 1 : 0, C: dX, ldc: inDim)
    }
    if let dW {
        parallelSgemm(transA: true, M: inDim, N: outDim, K: rows, A: x, lda: inDim, B: dY, ldb: outDim,
              beta: 1, C: dW, ldc: outDim)
    }
    if let dB { columnSumsAccumulate(dY, rows: rows, cols: outDim, into: dB) }
}

/// into[j] += sum_i m[i, j]; split over column blocks so each thread owns its outputs.
func columnSumsAccumulate(_ m: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil, into: UnsafeMutablePointer<Float>) {
    let ld = ld ?? cols
    parallelRows(cols, grain: 256) { cr in
        for i in 0..<rows {
            let row = m + i * ld
            for j in cr { into[j] += row[j] }
        }
    }
}

// MARK: LayerNorm (eps 1e-5, biased variance, as torch.nn.LayerNorm and the book's LayerNorm)

let layerNormEps: Float = 1e-5

/// out = (x - mean) / sqrt(var + eps) * w + b per row; saves mean and 1/std for the backward pass.
/// Without weight and bias, out is the normalised x alone.
func layerNormForward(_ x: UnsafePointer<Float>, rows: Int, dim C: Int, weight: UnsafePointer<Float>?,
                      bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>,
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
            if let weight, let bias {
                for j in 0..<C { oi[j] = (xi[j] - m) * s * weight[j] + bias[j] }
            } else {
                for j in 0..<C { oi[j] = (xi[j] - m) * s }
            }
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

// 0.5 * (1 + tanh(u)) is the logistic function of 2u, so gelu(v) = v / (1 + exp(-2u)) with
// u = sqrt(2/pi) * (v + 0.044715 v^3): one exponential and one division per element, and no
// sign handling (exp saturates to 0 or to a large finite value, which gives 0 for very negative v).

func geluForward(_ x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
    parallelRows(count, grain: 4096) { r in
        forEach8(count, r) { i, n in
            let v = loadPartial(x + i, n)
            let inner: Float8 = geluScale * (v + 0.044715 * (v * v * v))
            storePartial(v / (1 + vexp(-2 * inner)), out + i, n)
        }
    }
}

/// dX = dOut * gelu'(x), written in place over dOut's buffer when `dX == dOut`.
/// With s = 1 / (1 + exp(-2u)): gelu'(v) = s + v * s * (1 - s) * 2 * du/dv.
func geluBackward(_ x: UnsafePointer<Float>, dOut: UnsafePointer<Float>, count: Int, dX: UnsafeMutablePointer<Float>) {
    parallelRows(count, grain: 4096) { r in
        forEach8(count, r) { i, n in
            let v = loadPartial(x + i, n)
            let v2: Float8 = v * v
            let inner: Float8 = geluScale * (v + 0.044715 * v2 * v)
            let s: Float8 = 1 / (1 + vexp(-2 * inner))
            let dInner: Float8 = geluScale * (1 + 0.134145 * v2)
            let d: Float8 = s + 2 * v * s * (1 - s) * dInner
            storePartial(loadPartial(dOut + i, n) * d, dX + i, n)
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

/// Fills `mask` with inverted-dropout scales: 0 with probability p, else 1 / (1 - p).
func fillDropoutMask(_ mask: UnsafeMutablePointer<Float>, count: Int, p: Float, rng: inout SeededGenerator) {
    let keep = 1 / (1 - p)
    for i in 0..<count { mask[i] = rng.nextUnitFloat() < p ? 0 : keep }
}

// MARK: Vectorised exp / tanh (8 lanes)

typealias Float8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always) func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

/// exp(x) for 8 lanes: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial),
/// within 1e-7 relative of the exact value; libm's scalar expf/tanhf do not vectorise and were
/// the slowest part of GELU and of the softmaxes.
@inline(__always) func vexp(_ input: Float8) -> Float8 {
    // Clamped with compare-and-select: the generic pointwiseMin/Max were not inlined and cost
    // more than the polynomial.
    var x = input.replacing(with: -87, where: input .< -87)
    x.replace(with: 88, where: x .> 88)
    let magic: Float = 12_582_912   // 1.5 * 2^23: adding it rounds to an integer in the low bits
    let t = x * 1.442_695_040_888_963_4 + magic
    let n = t - magic
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p = Float8(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let y = p * (r * r) + r + 1
    let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: Float8.self)
}

/// Runs `body` over `count` floats in 8-lane chunks; the tail goes through a zero-padded vector.
@inline(__always) func forEach8(_ count: Int, _ range: Range<Int>, _ body: (Int, Int) -> Void) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        body(i, 8)
        i += 8
    }
    if i < range.upperBound { body(i, range.upperBound - i) }
}

@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> Float8 {
    if n == 8 { return load8(p) }
    var v = Float8(repeating: 0)
    for k in 0..<n { v[k] = p[k] }
    return v
}

@inline(__always) func storePartial(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == 8 { store8(v, p); return }
    for k in 0..<n { p[k] = v[k] }
}

/// row[j] = exp(row[j] - shift) for j < n; returns the sum.
@inline(__always) func expShiftInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    var acc = Float8(repeating: 0)
    var j = 0
    let s = Float8(repeating: shift)
    while j + 8 <= n {
        let e = vexp(load8(row + j) - s)
        store8(e, row + j)
        acc += e
        j += 8
    }
    var sum = acc.sum()
    if j < n {
        let e = vexp(loadPartial(row + j, n - j) - s)
        for k in 0..<(n - j) {
            row[j + k] = e[k]
            sum += e[k]
        }
    }
    return sum
}

/// max of row[0..<n] (n >= 1).
@inline(__always) func rowMax(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
    var j = 0
    var m8 = Float8(repeating: -.infinity)
    while j + 8 <= n {
        let v = load8(row + j)
        m8.replace(with: v, where: v .> m8)
        j += 8
    }
    var m = m8.max()
    while j < n {
        m = max(m, row[j])
        j += 1
    }
    return m
}

import ArtifactKit
import Foundation

/// The last transformer block and the final LayerNorm evaluated at ONE position per row.
///
/// When only the last block trains and the head reads one position per row (`last`, `first`,
/// `flexible`), the loss depends on the last block's output at that position only. Its keys and
/// values still come from every position (ln_1 and c_attn's key and value columns run on all
/// rows), but the query, the attention output, c_proj, ln_2, the MLP and ln_f are needed for one
/// row per sequence: of the block's matrix products per position only c_attn's key and value
/// columns (a sixth of them) run on every row. Same numbers as the full block at those
/// positions (tested against `GPT2Model.forwardBackward`).
///
/// Only positions 0...positions[b] of row b are read, so the rows are packed: row b's positions
/// sit at packed rows start[b]..<start[b] + positions[b] + 1, and the products run on the sum of
/// the needed lengths instead of batch x padded length (`flexible` batches are padded to their
/// longest row; each row here costs only its own length).
final class SelectedLastBlockState {
    let B, T, N, C, H, hd: Int
    let positions: [Int]
    /// First packed row of each sequence; N = the total number of packed rows.
    let start: [Int]
    let x: FloatBuffer          // [N, C] input hidden states, packed
    let ln1, ln1Mean, ln1Rstd, qkv: FloatBuffer
    let probs: FloatBuffer      // [B, H, T] attention weights of the selected query (zero past it)
    let y, resid2, ln2, ln2Mean, ln2Rstd, fc, gelu, out, lnf, lnfMean, lnfRstd: FloatBuffer

    init(B: Int, T: Int, C: Int, H: Int, positions: [Int]) {
        self.B = B; self.T = T; self.C = C; self.H = H; hd = C / H
        self.positions = positions
        var start = [Int](), n = 0
        for p in positions { start.append(n); n += p + 1 }
        self.start = start
        N = n
        x = FloatBuffer(count: N * C, zeroed: false)
        ln1 = FloatBuffer(count: N * C, zeroed: false)
        ln1Mean = FloatBuffer(count: N, zeroed: false)
        ln1Rstd = FloatBuffer(count: N, zeroed: false)
        qkv = FloatBuffer(count: N * 3 * C, zeroed: false)
        probs = FloatBuffer(count: B * H * T)
        y = FloatBuffer(count: B * C, zeroed: false)
        resid2 = FloatBuffer(count: B * C, zeroed: false)
        ln2 = FloatBuffer(count: B * C, zeroed: false)
        ln2Mean = FloatBuffer(count: B, zeroed: false)
        ln2Rstd = FloatBuffer(count: B, zeroed: false)
        fc = FloatBuffer(count: B * 4 * C, zeroed: false)
        gelu = FloatBuffer(count: B * 4 * C, zeroed: false)
        out = FloatBuffer(count: B * C, zeroed: false)
        lnf = FloatBuffer(count: B * C, zeroed: false)
        lnfMean = FloatBuffer(count: B, zeroed: false)
        lnfRstd = FloatBuffer(count: B, zeroed: false)
    }
}

extension GPT2Trunk {
    /// The last block and ln_f at `positions[b]` of each row, from the hidden states entering the
    /// last block ([batch, seqLen, embDim]). Returns the normalised states [batch, embDim]; with
    /// `keepActivations`, `backwardTop` may follow (gradients of the last block and ln_f).
    public func forwardLastBlockSelected(hidden: [Float], batch B: Int, seqLen T: Int, positions: [Int],
                                         keepActivations: Bool) throws -> [Float] {
        let cfg = model.config, C = cfg.embDim, H = cfg.nHeads, hd = cfg.headDim, l = cfg.nLayers - 1
        guard model.lora == nil else {
            throw PipelineError("the selected-position last block does not apply LoRA adapters", hint: "use forwardTop")
        }
        guard hidden.count == B * T * C, positions.count == B, positions.allSatisfy({ (0..<T).contains($0) }) else {
            throw PipelineError("forwardLastBlockSelected: \(hidden.count) hidden values and \(positions.count) positions for a \(B) x \(T) x \(C) batch")
        }
        let s = SelectedLastBlockState(B: B, T: T, C: C, H: H, positions: positions)
        let N = s.N, start = s.start
        hidden.withUnsafeBufferPointer { h in
            for b in 0..<B { (s.x.base + start[b] * C).update(from: h.baseAddress! + b * T * C, count: (positions[b] + 1) * C) }
        }
        let p = "h.\(l)."
        func w(_ name: String) -> UnsafeMutablePointer<Float> { model.params.base + layout.spec(named: name)!.offset }
        let qkvBias = layout.spec(named: p + "attn.c_attn.bias").map { model.params.base + $0.offset }

        layerNormForward(s.x.base, rows: N, dim: C, weight: w(p + "ln_1.weight"), bias: w(p + "ln_1.bias"),
                         out: s.ln1.base, mean: s.ln1Mean.base, rstd: s.ln1Rstd.base)
        // Keys and values at every position, the query only at the pooled one: c_attn's query
        // columns on the other rows would never be read (a third of c_attn's work saved).
        let wqkv = w(p + "attn.c_attn.weight")   // [C, 3C]: query, key, value columns
        if let b = qkvBias {
            parallelRows(N, grain: 64) { r in for i in r { (s.qkv.base + i * 3 * C + C).update(from: b + C, count: 2 * C) } }
        }
        parallelSgemm(M: N, N: 2 * C, K: C, A: s.ln1.base, lda: C, B: wqkv + C, ldb: 3 * C, beta: qkvBias == nil ? 0 : 1,
              C: s.qkv.base + C, ldc: 3 * C)
        let selectedLn1 = FloatBuffer(count: B * C, zeroed: false), query = FloatBuffer(count: B * C, zeroed: false)
        for b in 0..<B {
            (selectedLn1.base + b * C).update(from: s.ln1.base + (start[b] + positions[b]) * C, count: C)
            if let bias = qkvBias { (query.base + b * C).update(from: bias, count: C) }
        }
        parallelSgemm(M: B, N: C, K: C, A: selectedLn1.base, lda: C, B: wqkv, ldb: 3 * C, beta: qkvBias == nil ? 0 : 1,
              C: query.base, ldc: C)
        for b in 0..<B { (s.qkv.base + (start[b] + positions[b]) * 3 * C).update(from: query.base + b * C, count: C) }
        let scale = 1 / Float(hd).squareRoot()
        let qkv = s.qkv.base, probs = s.probs.base, y = s.y.base
        parallelRows(B * H, grain: 1) { r in
            for bh in r {
                let b = bh / H, h = bh % H, pos = positions[b]
                let q = qkv + (start[b] + pos) * 3 * C + h * hd
                let pr = probs + bh * T
                var mx = -Float.infinity
                for j in 0...pos {
                    let k = qkv + (start[b] + j) * 3 * C + C + h * hd
                    var d: Float = 0
                    for i in 0..<hd { d += q[i] * k[i] }
                    pr[j] = d * scale
                    mx = max(mx, pr[j])
                }
                var sum: Float = 0
                for j in 0...pos { pr[j] = expf(pr[j] - mx); sum += pr[j] }
                let inv = 1 / sum
                let yo = y + b * C + h * hd
                for i in 0..<hd { yo[i] = 0 }
                for j in 0...pos {
                    pr[j] *= inv
                    let v = qkv + (start[b] + j) * 3 * C + 2 * C + h * hd
                    for i in 0..<hd { yo[i] += pr[j] * v[i] }
                }
            }
        }
        linearForward(y, rows: B, inDim: C, outDim: C, weight: w(p + "attn.c_proj.weight"), bias: w(p + "attn.c_proj.bias"),
                      out: s.resid2.base)
        for b in 0..<B {
            let xs = s.x.base + (start[b] + positions[b]) * C, o = s.resid2.base + b * C
            for i in 0..<C { o[i] += xs[i] }
        }
        layerNormForward(s.resid2.base, rows: B, dim: C, weight: w(p + "ln_2.weight"), bias: w(p + "ln_2.bias"),
                         out: s.ln2.base, mean: s.ln2Mean.base, rstd: s.ln2Rstd.base)
        linearForward(s.ln2.base, rows: B, inDim: C, outDim: 4 * C, weight: w(p + "mlp.c_fc.weight"), bias: w(p + "mlp.c_fc.bias"),
                      out: s.fc.base)
        geluForward(s.fc.base, count: B * 4 * C, out: s.gelu.base)
        linearForward(s.gelu.base, rows: B, inDim: 4 * C, outDim: C, weight: w(p + "mlp.c_proj.weight"), bias: w(p + "mlp.c_proj.bias"),
                      out: s.out.base)
        for i in 0..<(B * C) { s.out.base[i] += s.resid2.base[i] }
        layerNormForward(s.out.base, rows: B, dim: C, weight: w("ln_f.weight"), bias: w("ln_f.bias"),
                         out: s.lnf.base, mean: s.lnfMean.base, rstd: s.lnfRstd.base)
        selected = keepActivations ? s : nil
        return Array(UnsafeBufferPointer(start: s.lnf.base, count: B * C))
    }

    /// Backward of `forwardLastBlockSelected` given d(loss)/d(output) [batch, embDim]; returns the
    /// gradients of the last block's tensors and ln_f in the model's gradient buffer; returns their offset ranges.
    func backwardSelected(_ s: SelectedLastBlockState, dOutput: [Float]) throws -> [Range<Int>] {
        let (B, T, N, C, H, hd, start) = (s.B, s.T, s.N, s.C, s.H, s.hd, s.start)
        guard dOutput.count == B * C else { throw PipelineError("got \(dOutput.count) output gradients for \(B) x \(C)") }
        let l = model.config.nLayers - 1, p = "h.\(l)."
        let names = layout.tensors.filter { $0.block == l || $0.name.hasPrefix("ln_f.") }
        let G = model.ensureGradients().base
        for spec in names { (G + spec.offset).update(repeating: 0, count: spec.count) }
        func w(_ name: String) -> UnsafeMutablePointer<Float> { model.params.base + layout.spec(named: name)!.offset }
        func g(_ name: String) -> UnsafeMutablePointer<Float>? { layout.spec(named: name).map { G + $0.offset } }

        let dOut = FloatBuffer(count: B * C), dResid2 = FloatBuffer(count: B * C), dG = FloatBuffer(count: B * 4 * C)
        let dLn2 = FloatBuffer(count: B * C), dY = FloatBuffer(count: B * C)
        dOutput.withUnsafeBufferPointer { d in
            layerNormBackward(dOut: d.baseAddress!, x: s.out.base, mean: s.lnfMean.base, rstd: s.lnfRstd.base, weight: w("ln_f.weight"),
                              rows: B, dim: C, dX: dOut.base, accumulateDX: false, dW: g("ln_f.weight"), dB: g("ln_f.bias"))
        }
        linearBackward(dY: dOut.base, x: s.gelu.base, rows: B, inDim: 4 * C, outDim: C, weight: w(p + "mlp.c_proj.weight"),
                       dX: dG.base, dW: g(p + "mlp.c_proj.weight"), dB: g(p + "mlp.c_proj.bias"))
        geluBackward(s.fc.base, dOut: dG.base, count: B * 4 * C, dX: dG.base)
        linearBackward(dY: dG.base, x: s.ln2.base, rows: B, inDim: C, outDim: 4 * C, weight: w(p + "mlp.c_fc.weight"),
                       dX: dLn2.base, dW: g(p + "mlp.c_fc.weight"), dB: g(p + "mlp.c_fc.bias"))
        dResid2.base.update(from: dOut.base, count: B * C)
        layerNormBackward(dOut: dLn2.base, x: s.resid2.base, mean: s.ln2Mean.base, rstd: s.ln2Rstd.base, weight: w(p + "ln_2.weight"),
                          rows: B, dim: C, dX: dResid2.base, accumulateDX: true, dW: g(p + "ln_2.weight"), dB: g(p + "ln_2.bias"))
        linearBackward(dY: dResid2.base, x: s.y.base, rows: B, inDim: C, outDim: C, weight: w(p + "attn.c_proj.weight"),
                       dX: dY.base, dW: g(p + "attn.c_proj.weight"), dB: g(p + "attn.c_proj.bias"))

        // Attention of one query row per (sequence, head): y = sum_j P_j v_j, P = softmax(scale q.k_j).
        let dQKV = FloatBuffer(count: N * 3 * C)
        let qkv = s.qkv.base, probs = s.probs.base, dq = dQKV.base, dy = dY.base
        let scale = 1 / Float(hd).squareRoot()
        parallelRows(B * H, grain: 1) { r in
            for bh in r {
                let b = bh / H, h = bh % H, pos = s.positions[b]
                let pr = probs + bh * T
                let dyh = dy + b * C + h * hd
                var dP = [Float](repeating: 0, count: pos + 1)
                var dot: Float = 0
                for j in 0...pos {
                    let v = qkv + (start[b] + j) * 3 * C + 2 * C + h * hd
                    let dv = dq + (start[b] + j) * 3 * C + 2 * C + h * hd
                    var d: Float = 0
                    for i in 0..<hd { d += dyh[i] * v[i]; dv[i] += pr[j] * dyh[i] }
                    dP[j] = d
                    dot += pr[j] * d
                }
                let q = qkv + (start[b] + pos) * 3 * C + h * hd
                let dqh = dq + (start[b] + pos) * 3 * C + h * hd
                for j in 0...pos {
                    let dS = pr[j] * (dP[j] - dot) * scale
                    let k = qkv + (start[b] + j) * 3 * C + C + h * hd
                    let dk = dq + (start[b] + j) * 3 * C + C + h * hd
                    for i in 0..<hd { dqh[i] += dS * k[i]; dk[i] += dS * q[i] }
                }
            }
        }
        // c_attn backward as its forward ran: key and value columns over every row, query columns
        // over the pooled rows only (their gradient is zero on the others). Nothing below this
        // block trains, so d(ln_1 output) is needed only for ln_1's own weight and bias, and for
        // the key/value part it never has to be formed: with ln1 = g * xhat + beta (per column c),
        //   dW_kv[c, j]   = sum_n ln1[n, c] dKV[n, j] = g_c M[c, j] + beta_c S_j,
        //   d(g)_c        = sum_n xhat[n, c] sum_j dKV[n, j] W_kv[c, j] = sum_j W_kv[c, j] M[c, j],
        //   d(beta)_c     = sum_j W_kv[c, j] S_j,
        // with M = xhat^T dKV [C, 2C] and S the column sums of dKV: one product over the rows
        // instead of two (d(ln1) = dKV W_kv^T and ln1^T dKV).
        let wqkv = w(p + "attn.c_attn.weight"), dW = g(p + "attn.c_attn.weight")!, dBias = g(p + "attn.c_attn.bias")
        let gamma = w(p + "ln_1.weight"), beta = w(p + "ln_1.bias")
        let dGamma = g(p + "ln_1.weight")!, dBeta = g(p + "ln_1.bias")!
        let xhat = FloatBuffer(count: N * C, zeroed: false)
        let xb = s.x.base, mean = s.ln1Mean.base, rstd = s.ln1Rstd.base
        parallelRows(N, grain: 16) { r in
            for i in r {
                let xi = xb + i * C, oi = xhat.base + i * C, m = mean[i], sd = rstd[i]
                for c in 0..<C { oi[c] = (xi[c] - m) * sd }
            }
        }
        let M = FloatBuffer(count: C * 2 * C, zeroed: false), S = FloatBuffer(count: 2 * C)
        parallelSgemm(transA: true, M: C, N: 2 * C, K: N, A: xhat.base, lda: C, B: dq + C, ldb: 3 * C, beta: 0, C: M.base, ldc: 2 * C)
        columnSumsAccumulate(dq + C, rows: N, cols: 2 * C, ld: 3 * C, into: S.base)
        if let dBias { for j in 0..<(2 * C) { dBias[C + j] += S.base[j] } }
        parallelRows(C, grain: 16) { cr in
            for c in cr {
                let mc = M.base + c * 2 * C, wc = wqkv + c * 3 * C + C, dwc = dW + c * 3 * C + C
                let gc = gamma[c], bc = beta[c]
                var sumWM: Float = 0, sumWS: Float = 0
                for j in 0..<(2 * C) {
                    dwc[j] += gc * mc[j] + bc * S.base[j]
                    sumWM += wc[j] * mc[j]
                    sumWS += wc[j] * S.base[j]
                }
                dGamma[c] += sumWM
                dBeta[c] += sumWS
            }
        }
        // The query columns at the pooled rows: d(ln1) there is formed and goes through ln_1's
        // weight and bias gradients the usual way.
        let selectedLn1 = FloatBuffer(count: B * C, zeroed: false), dQuery = FloatBuffer(count: B * C, zeroed: false)
        let dSelected = FloatBuffer(count: B * C, zeroed: false), selectedXhat = FloatBuffer(count: B * C, zeroed: false)
        for b in 0..<B {
            let row = start[b] + s.positions[b]
            (selectedLn1.base + b * C).update(from: s.ln1.base + row * C, count: C)
            (selectedXhat.base + b * C).update(from: xhat.base + row * C, count: C)
            (dQuery.base + b * C).update(from: dq + row * 3 * C, count: C)
        }
        parallelSgemm(transB: true, M: B, N: C, K: C, A: dQuery.base, lda: C, B: wqkv, ldb: 3 * C, beta: 0, C: dSelected.base, ldc: C)
        parallelSgemm(transA: true, M: C, N: C, K: B, A: selectedLn1.base, lda: C, B: dQuery.base, ldb: C, beta: 1, C: dW, ldc: 3 * C)
        if let dBias { columnSumsAccumulate(dQuery.base, rows: B, cols: C, into: dBias) }
        for b in 0..<B {
            let d = dSelected.base + b * C, xh = selectedXhat.base + b * C
            for c in 0..<C { dGamma[c] += d[c] * xh[c]; dBeta[c] += d[c] }
        }
        return names.map(\.range)
    }
}

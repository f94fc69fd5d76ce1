import ArtifactKit
import Foundation

/// The last transformer block and the final LayerNorm evaluated at ONE position per row.
///
/// When only the last block trains and the head reads one position per row (`last`, `first`,
/// `flexible`), the loss depends on the last block's output at that position only: the query,
/// the attention output, c_proj, ln_2, the MLP and ln_f are needed for one row per sequence.
///
/// The keys and values of every position are not formed either. With xhat_t the normalised input
/// of ln_1 at position t (fixed: nothing below this block trains), ln_1's output is
/// g * xhat_t + beta, and for head h with query q (at the pooled position):
///   score_t = q . k_t / sqrt(d) = xhat_t . w + (terms equal for every t),  w = g * (W_k,h q) / sqrt(d),
/// and the terms equal for every t (q . b_k, beta . (W_k,h q)) cancel in the softmax; then with
/// p = softmax(score) over t <= pooled position and a = sum_t p_t xhat_t (sum p_t = 1):
///   output_h = sum_t p_t v_t = (g * a + beta) W_v,h + b_v,h.
/// So per sequence and head the work is two passes over its positions' xhat (scores, then a)
/// instead of c_attn's key and value columns on every position, about 1/64 of the products.
/// Same numbers as the full block at those positions to float rounding (tested against the full
/// blocks of `forwardTop` / `backwardTop`, gradients included, in GPT2BackendTests, and against
/// PyTorch in ClassifierParityTests); c_attn's key bias gets no gradient, as in exact arithmetic
/// (the full block's is rounding noise around zero).
///
/// Only positions 0...positions[b] of row b are read, so the rows are packed: row b's positions
/// sit at packed rows start[b]..<start[b] + positions[b] + 1.
final class SelectedLastBlockState: BlockTailActivations {
    let B, T, C, H, hd: Int
    let positions: [Int]
    /// First packed row of each sequence.
    let start: [Int]
    let xhat: FloatBuffer       // [packed rows, C] ln_1's normalised input (before its weight and bias), packed
    let xSelected, ln1Selected, query: FloatBuffer   // [B, C] at the pooled positions
    let kq: FloatBuffer         // [B, H, C] W_k,h q_h
    let probs: FloatBuffer      // [B, H, T] attention weights of the selected query (zero past it)
    let mix: FloatBuffer        // [B, H, C] a = sum_t p_t xhat_t
    let mixLn1: FloatBuffer     // [B, H, C] g * a + beta
    // Past attention (y ... gelu: BlockTailActivations, [B, ...]), then the block's output and ln_f.
    let out, lnf, lnfMean, lnfRstd: FloatBuffer

    init(B: Int, T: Int, C: Int, H: Int, positions: [Int]) {
        self.B = B; self.T = T; self.C = C; self.H = H; hd = C / H
        self.positions = positions
        var start = [Int](), n = 0
        for p in positions { start.append(n); n += p + 1 }
        self.start = start
        xhat = FloatBuffer(count: n * C, zeroed: false)
        xSelected = FloatBuffer(count: B * C, zeroed: false)
        ln1Selected = FloatBuffer(count: B * C, zeroed: false)
        query = FloatBuffer(count: B * C, zeroed: false)
        kq = FloatBuffer(count: B * H * C, zeroed: false)
        probs = FloatBuffer(count: B * H * T)
        mix = FloatBuffer(count: B * H * C, zeroed: false)
        mixLn1 = FloatBuffer(count: B * H * C, zeroed: false)
        out = FloatBuffer(count: B * C, zeroed: false)
        lnf = FloatBuffer(count: B * C, zeroed: false)
        lnfMean = FloatBuffer(count: B, zeroed: false)
        lnfRstd = FloatBuffer(count: B, zeroed: false)
        super.init(rows: B, C: C)
    }
}

extension GPT2Trunk {
    /// The last block and ln_f at `positions[b]` of each row, from the hidden states entering the
    /// last block ([batch, seqLen, embDim]). Returns the normalised states [batch, embDim]; with
    /// `keepActivations`, `backwardTop` may follow (gradients of the last block and ln_f).
    public func forwardLastBlockSelected(hidden: [Float], batch B: Int, seqLen T: Int, positions: [Int],
                                         keepActivations: Bool) throws -> [Float] {
        let cfg = model.config, C = cfg.embDim, H = cfg.nHeads
        guard model.lora == nil else {
            throw PipelineError("the selected-position last block does not apply LoRA adapters", hint: "use forwardTop")
        }
        guard hidden.count == B * T * C, positions.count == B, positions.allSatisfy({ (0..<T).contains($0) }) else {
            throw PipelineError("forwardLastBlockSelected: \(hidden.count) hidden values and \(positions.count) positions for a \(B) x \(T) x \(C) batch")
        }
        let s = SelectedLastBlockState(B: B, T: T, C: C, H: H, positions: positions)
        let weights = selectedAttentionWeights()
        normaliseSelectedRows(hidden, into: s)
        formSelectedQueries(s, weights)
        attendFromSelectedQueries(s, weights)
        formSelectedAttentionOutput(s, weights)
        forwardSelectedBlockTail(s)
        selected = keepActivations ? s : nil
        return Array(UnsafeBufferPointer(start: s.lnf.base, count: B * C))
    }

    /// Backward of `forwardLastBlockSelected` given d(loss)/d(output) [batch, embDim]: ADDS the
    /// gradients of the last block's tensors and ln_f into `G` (the flat layout's offsets; every
    /// product accumulates with beta 1, so the caller's buffer takes them without a copy).
    func backwardSelected(_ s: SelectedLastBlockState, dOutput: [Float], addingInto G: UnsafeMutablePointer<Float>) throws {
        let (B, C) = (s.B, s.C)
        guard dOutput.count == B * C else { throw PipelineError("got \(dOutput.count) output gradients for \(B) x \(C)") }
        let dY = backwardSelectedBlockTail(s, dOutput: dOutput, addingInto: G)

        // The attention, backwards through output_h = (g * a_h + beta) W_v,h + b_v,h,
        // a_h = sum_t p_t xhat_t, p = softmax(xhat_t . w_h), w_h = scale * g * kq_h, kq_h = W_k,h q_h
        // (see the type's comment). Nothing below this block trains, so no gradient reaches xhat.
        let weights = selectedAttentionWeights(), grads = selectedAttentionGradients(in: G)
        let dMix = backwardSelectedValues(s, dY: dY, weights, grads)
        backwardSelectedMixNorm(s, dMix: dMix, weights, grads)
        let dWeights = backwardSelectedSoftmax(s, dMix: dMix)
        backwardSelectedScoreWeights(s, dWeights: dWeights, weights, grads)
        let dQuery = backwardSelectedKeys(s, dWeights: dWeights, weights, grads)
        backwardSelectedQueries(s, dQuery: dQuery, weights, grads)
    }

    // MARK: - Parameters

    private var lastBlockPrefix: String { "h.\(model.config.nLayers - 1)." }

    private func parameterPointer(_ name: String) -> UnsafeMutablePointer<Float> {
        model.params.base + layout.spec(named: name)!.offset
    }

    /// Where tensor `name`'s gradient sits in the flat buffer `G`, or nil when the layout has no such tensor.
    private func gradientPointer(_ name: String, in G: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>? {
        layout.spec(named: name).map { G + $0.offset }
    }

    private func selectedAttentionWeights() -> SelectedAttentionWeights {
        let p = lastBlockPrefix
        return SelectedAttentionWeights(gamma: parameterPointer(p + "ln_1.weight"), beta: parameterPointer(p + "ln_1.bias"),
                                        wqkv: parameterPointer(p + "attn.c_attn.weight"),
                                        qkvBias: layout.spec(named: p + "attn.c_attn.bias").map { model.params.base + $0.offset })
    }

    private func selectedAttentionGradients(in G: UnsafeMutablePointer<Float>) -> SelectedAttentionGradients {
        let p = lastBlockPrefix
        return SelectedAttentionGradients(dGamma: gradientPointer(p + "ln_1.weight", in: G)!, dBeta: gradientPointer(p + "ln_1.bias", in: G)!,
                                          dW: gradientPointer(p + "attn.c_attn.weight", in: G)!,
                                          dBias: gradientPointer(p + "attn.c_attn.bias", in: G))
    }

    // MARK: - Forward steps

    /// ln_1's normalised input xhat (before its weight and bias) at positions 0...positions[b] of
    /// each row, packed; and the block's input at the pooled positions, for the residual.
    private func normaliseSelectedRows(_ hidden: [Float], into s: SelectedLastBlockState) {
        let (B, T, C, positions, start) = (s.B, s.T, s.C, s.positions, s.start)
        hidden.withUnsafeBufferPointer { h in
            for b in 0..<B {
                let row = h.baseAddress! + b * T * C
                layerNormForward(row, rows: positions[b] + 1, dim: C, weight: nil, bias: nil, out: s.xhat.base + start[b] * C,
                                 mean: nil, rstd: nil)
                (s.xSelected.base + b * C).update(from: row + positions[b] * C, count: C)
            }
        }
    }

    /// ln_1 at the pooled positions, the query q = ln_1 W_q + b_q there, and kq_h = q_h W_k,h^T.
    private func formSelectedQueries(_ s: SelectedLastBlockState, _ weights: SelectedAttentionWeights) {
        let (B, C, H, hd, positions, start) = (s.B, s.C, s.H, s.hd, s.positions, s.start)
        let gamma = weights.gamma, beta = weights.beta, wqkv = weights.wqkv, qkvBias = weights.qkvBias
        for b in 0..<B {
            let xh = s.xhat.base + (start[b] + positions[b]) * C, o = s.ln1Selected.base + b * C
            for c in 0..<C { o[c] = xh[c] * gamma[c] + beta[c] }
            if let bias = qkvBias { (s.query.base + b * C).update(from: bias, count: C) }
        }
        parallelSgemm(M: B, N: C, K: C, A: s.ln1Selected.base, lda: C, B: wqkv, ldb: 3 * C, beta: qkvBias == nil ? 0 : 1,
                      C: s.query.base, ldc: C)
        // kq_h = q_h W_k,h^T, per head: [B, hd] x [hd, C].
        BLASThreads.set(1)
        parallelRows(H, grain: 1) { r in
            for h in r {
                sgemm(transB: true, M: B, N: C, K: hd, A: s.query.base + h * hd, lda: C, B: wqkv + C + h * hd, ldb: 3 * C,
                      beta: 0, C: s.kq.base + h * C, ldc: H * C)
            }
        }
    }

    /// The selected queries' attention weights p over each row's positions (scores xhat_t . w with
    /// w = scale * g * kq), the mixes a = sum_t p_t xhat_t, and g * a + beta.
    private func attendFromSelectedQueries(_ s: SelectedLastBlockState, _ weights: SelectedAttentionWeights) {
        let (B, T, C, H, hd, positions, start) = (s.B, s.T, s.C, s.H, s.hd, s.positions, s.start)
        let gamma = weights.gamma, beta = weights.beta
        let scale = 1 / Float(hd).squareRoot()
        let scoreWeights = FloatBuffer(count: B * H * C, zeroed: false)
        for bh in 0..<(B * H) {
            let k = s.kq.base + bh * C, o = scoreWeights.base + bh * C
            for c in 0..<C { o[c] = scale * gamma[c] * k[c] }
        }
        // Per sequence: scores [H, n] = w [H, C] x xhat^T, softmax per head, then a [H, C] = p [H, n] x xhat.
        parallelRows(B, grain: 1) { r in
            for b in r {
                let n = positions[b] + 1, xb = s.xhat.base + start[b] * C, pr = s.probs.base + b * H * T
                sgemm(transB: true, M: H, N: n, K: C, A: scoreWeights.base + b * H * C, lda: C, B: xb, ldb: C, beta: 0, C: pr, ldc: T)
                for h in 0..<H {
                    let row = pr + h * T
                    let inv = 1 / expShiftInPlace(row, n, shift: rowMax(row, n))
                    for j in 0..<n { row[j] *= inv }
                }
                sgemm(M: H, N: C, K: n, A: pr, lda: T, B: xb, ldb: C, beta: 0, C: s.mix.base + b * H * C, ldc: C)
            }
        }
        for bh in 0..<(B * H) {
            let a = s.mix.base + bh * C, o = s.mixLn1.base + bh * C
            for c in 0..<C { o[c] = gamma[c] * a[c] + beta[c] }
        }
    }

    /// output_h = (g * a_h + beta) W_v,h + b_v,h, per head: [B, C] (rows H*C apart) x [C, hd].
    private func formSelectedAttentionOutput(_ s: SelectedLastBlockState, _ weights: SelectedAttentionWeights) {
        let (B, C, H, hd) = (s.B, s.C, s.H, s.hd)
        let wqkv = weights.wqkv, qkvBias = weights.qkvBias
        let y = s.y.base
        if let bias = qkvBias { for b in 0..<B { (y + b * C).update(from: bias + 2 * C, count: C) } }
        parallelRows(H, grain: 1) { r in
            for h in r {
                sgemm(M: B, N: hd, K: C, A: s.mixLn1.base + h * C, lda: H * C, B: wqkv + 2 * C + h * hd, ldb: 3 * C,
                      beta: qkvBias == nil ? 0 : 1, C: y + h * hd, ldc: C)
            }
        }
    }

    /// Past the attention, at the pooled rows: c_proj and its residual, ln_2, the MLP and its residual, ln_f.
    private func forwardSelectedBlockTail(_ s: SelectedLastBlockState) {
        let (B, C) = (s.B, s.C), p = lastBlockPrefix
        func w(_ name: String) -> UnsafeMutablePointer<Float> { parameterPointer(name) }
        linearForward(s.y.base, rows: B, inDim: C, outDim: C, weight: w(p + "attn.c_proj.weight"), bias: w(p + "attn.c_proj.bias"),
                      out: s.resid2.base)
        for b in 0..<B {
            let xs = s.xSelected.base + b * C, o = s.resid2.base + b * C
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
    }

    // MARK: - Backward steps

    /// Backward through ln_f, the MLP, ln_2 and c_proj (adding their gradients into `G`); returns
    /// d(attention output) [B, C].
    private func backwardSelectedBlockTail(_ s: SelectedLastBlockState, dOutput: [Float],
                                           addingInto G: UnsafeMutablePointer<Float>) -> FloatBuffer {
        let (B, C) = (s.B, s.C), p = lastBlockPrefix
        func w(_ name: String) -> UnsafeMutablePointer<Float> { parameterPointer(name) }
        func g(_ name: String) -> UnsafeMutablePointer<Float>? { gradientPointer(name, in: G) }
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
        return dY
    }

    /// Value columns: dW_v,h += (g * a_h + beta)^T d(output_h); d(g * a_h + beta) = d(output_h) W_v,h^T,
    /// returned [B, H, C]. The value bias takes d(output) summed over the rows.
    private func backwardSelectedValues(_ s: SelectedLastBlockState, dY: FloatBuffer, _ weights: SelectedAttentionWeights,
                                        _ grads: SelectedAttentionGradients) -> FloatBuffer {
        let (B, C, H, hd) = (s.B, s.C, s.H, s.hd)
        let wqkv = weights.wqkv, dW = grads.dW
        let dy = dY.base
        if let dBias = grads.dBias { columnSumsAccumulate(dy, rows: B, cols: C, into: dBias + 2 * C) }
        let dMix = FloatBuffer(count: B * H * C, zeroed: false)
        BLASThreads.set(1)
        parallelRows(H, grain: 1) { r in
            for h in r {
                sgemm(transA: true, M: C, N: hd, K: B, A: s.mixLn1.base + h * C, lda: H * C, B: dy + h * hd, ldb: C,
                      beta: 1, C: dW + 2 * C + h * hd, ldc: 3 * C)
                sgemm(transB: true, M: B, N: C, K: hd, A: dy + h * hd, lda: C, B: wqkv + 2 * C + h * hd, ldb: 3 * C,
                      beta: 0, C: dMix.base + h * C, ldc: H * C)
            }
        }
        return dMix
    }

    /// ln_1's weight and bias through g * a + beta; then d(a) = g * d(g * a + beta), in place in `dMix`.
    private func backwardSelectedMixNorm(_ s: SelectedLastBlockState, dMix: FloatBuffer, _ weights: SelectedAttentionWeights,
                                         _ grads: SelectedAttentionGradients) {
        let (C, BH) = (s.C, s.B * s.H)
        let gamma = weights.gamma, dGamma = grads.dGamma, dBeta = grads.dBeta
        parallelRows(C, grain: 64) { cr in
            for c in cr {
                var sg: Float = 0, sb: Float = 0
                for bh in 0..<BH {
                    let d = dMix.base[bh * C + c]
                    sg += s.mix.base[bh * C + c] * d
                    sb += d
                }
                dGamma[c] += sg
                dBeta[c] += sb
            }
        }
        for bh in 0..<BH {
            let d = dMix.base + bh * C
            for c in 0..<C { d[c] *= gamma[c] }
        }
    }

    /// Per sequence: d(p) [H, n] = d(a) [H, C] x xhat^T, softmax backward, d(w) [H, C] = d(score) x xhat;
    /// returns d(w) [B, H, C].
    private func backwardSelectedSoftmax(_ s: SelectedLastBlockState, dMix: FloatBuffer) -> FloatBuffer {
        let (B, T, C, H, start) = (s.B, s.T, s.C, s.H, s.start)
        let dScores = FloatBuffer(count: B * H * T, zeroed: false), dWeights = FloatBuffer(count: B * H * C, zeroed: false)
        parallelRows(B, grain: 1) { r in
            for b in r {
                let n = s.positions[b] + 1, xb = s.xhat.base + start[b] * C
                let pr = s.probs.base + b * H * T, ds = dScores.base + b * H * T
                sgemm(transB: true, M: H, N: n, K: C, A: dMix.base + b * H * C, lda: C, B: xb, ldb: C, beta: 0, C: ds, ldc: T)
                for h in 0..<H {
                    let ph = pr + h * T, dh = ds + h * T
                    var dot: Float = 0
                    for j in 0..<n { dot += ph[j] * dh[j] }
                    for j in 0..<n { dh[j] = ph[j] * (dh[j] - dot) }
                }
                sgemm(M: H, N: C, K: n, A: ds, lda: T, B: xb, ldb: C, beta: 0, C: dWeights.base + b * H * C, ldc: C)
            }
        }
        return dWeights
    }

    /// w = scale * g * kq: ln_1's weight, then d(kq) = scale * g * d(w), in place in `dWeights`.
    private func backwardSelectedScoreWeights(_ s: SelectedLastBlockState, dWeights: FloatBuffer, _ weights: SelectedAttentionWeights,
                                              _ grads: SelectedAttentionGradients) {
        let (C, BH) = (s.C, s.B * s.H)
        let gamma = weights.gamma, dGamma = grads.dGamma
        let scale = 1 / Float(s.hd).squareRoot()
        parallelRows(C, grain: 64) { cr in
            for c in cr {
                var sg: Float = 0
                for bh in 0..<BH { sg += dWeights.base[bh * C + c] * s.kq.base[bh * C + c] }
                dGamma[c] += scale * sg
            }
        }
        for bh in 0..<BH {
            let d = dWeights.base + bh * C
            for c in 0..<C { d[c] *= scale * gamma[c] }
        }
    }

    /// Key columns: kq_h = q_h W_k,h^T, so dW_k,h += d(kq_h)^T q_h and d(q_h) = d(kq_h) W_k,h, returned
    /// [B, C]. The key bias adds the same amount to every score of a head: no gradient.
    private func backwardSelectedKeys(_ s: SelectedLastBlockState, dWeights: FloatBuffer, _ weights: SelectedAttentionWeights,
                                      _ grads: SelectedAttentionGradients) -> FloatBuffer {
        let (B, C, H, hd) = (s.B, s.C, s.H, s.hd)
        let wqkv = weights.wqkv, dW = grads.dW
        let dQuery = FloatBuffer(count: B * C, zeroed: false)
        parallelRows(H, grain: 1) { r in
            for h in r {
                sgemm(transA: true, M: C, N: hd, K: B, A: dWeights.base + h * C, lda: H * C, B: s.query.base + h * hd, ldb: C,
                      beta: 1, C: dW + C + h * hd, ldc: 3 * C)
                sgemm(M: B, N: hd, K: C, A: dWeights.base + h * C, lda: H * C, B: wqkv + C + h * hd, ldb: 3 * C,
                      beta: 0, C: dQuery.base + h * hd, ldc: C)
            }
        }
        return dQuery
    }

    /// The query columns at the pooled rows: d(ln1) there goes through ln_1's weight and bias.
    private func backwardSelectedQueries(_ s: SelectedLastBlockState, dQuery: FloatBuffer, _ weights: SelectedAttentionWeights,
                                         _ grads: SelectedAttentionGradients) {
        let (B, C, start) = (s.B, s.C, s.start)
        let wqkv = weights.wqkv, dW = grads.dW, dGamma = grads.dGamma, dBeta = grads.dBeta
        let dSelected = FloatBuffer(count: B * C, zeroed: false)
        parallelSgemm(transB: true, M: B, N: C, K: C, A: dQuery.base, lda: C, B: wqkv, ldb: 3 * C, beta: 0, C: dSelected.base, ldc: C)
        parallelSgemm(transA: true, M: C, N: C, K: B, A: s.ln1Selected.base, lda: C, B: dQuery.base, ldb: C, beta: 1, C: dW, ldc: 3 * C)
        if let dBias = grads.dBias { columnSumsAccumulate(dQuery.base, rows: B, cols: C, into: dBias) }
        for b in 0..<B {
            let d = dSelected.base + b * C, xh = s.xhat.base + (start[b] + s.positions[b]) * C
            for c in 0..<C { dGamma[c] += d[c] * xh[c]; dBeta[c] += d[c] }
        }
    }
}

/// The last block's ln_1 and c_attn parameters, which the selected-position attention reads.
private struct SelectedAttentionWeights {
    /// ln_1's weight and bias.
    let gamma, beta: UnsafeMutablePointer<Float>
    /// [C, 3C]: query, key, value columns.
    let wqkv: UnsafeMutablePointer<Float>
    let qkvBias: UnsafeMutablePointer<Float>?
}

/// Where the backward adds the gradients of ln_1 and c_attn (inside the caller's flat buffer).
private struct SelectedAttentionGradients {
    let dGamma, dBeta, dW: UnsafeMutablePointer<Float>
    let dBias: UnsafeMutablePointer<Float>?
}

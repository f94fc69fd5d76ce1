import ArtifactKit
import COpenBLAS
import Foundation

/// One forward (and optionally backward) pass over a [batch, seqLen] token block.
///
/// Levels: the embeddings are level 0, block i is level i + 1, ln_f and the head are level
/// nLayers + 1. The lowest trainable level decides how far down the backward pass goes and which
/// blocks keep their activations.
final class Pass {
    let model: GPT2Model
    let ws: Workspace
    let B, T, N, C, H, hd, V, L: Int
    let tokens: [Int32]
    let P: UnsafeMutablePointer<Float>
    let G: UnsafeMutablePointer<Float>?
    let trainable: TrainableSet?
    let lowest: Int
    let dropout: Bool
    let dropP: Float
    var rng: SeededGenerator
    let scale: Float

    init(model: GPT2Model, tokens: [Int32], batch: Int, seqLen: Int, trainable: TrainableSet?, training: Bool,
         seed: UInt64) throws {
        let cfg = model.config
        guard batch > 0, seqLen > 0 else { throw PipelineError("batch size and sequence length must be positive (got \(batch) x \(seqLen))") }
        guard seqLen <= cfg.contextLength else {
            throw PipelineError("sequence length \(seqLen) is longer than the model's context length \(cfg.contextLength)",
                                hint: "truncate the inputs to at most \(cfg.contextLength) tokens")
        }
        guard tokens.count == batch * seqLen else {
            throw PipelineError("got \(tokens.count) token ids for a \(batch) x \(seqLen) batch (expected \(batch * seqLen))")
        }
        for (i, t) in tokens.enumerated() where t < 0 || Int(t) >= cfg.vocabSize {
            throw PipelineError("token id \(t) at batch row \(i / seqLen), position \(i % seqLen) is outside the vocabulary 0..<\(cfg.vocabSize)")
        }
        self.model = model
        ws = model.workspace
        B = batch; T = seqLen; N = batch * seqLen
        C = cfg.embDim; H = cfg.nHeads; hd = cfg.headDim; V = cfg.vocabSize; L = cfg.nLayers
        self.tokens = tokens
        P = model.params.base
        self.trainable = trainable
        // LoRA-only training allocates no gradients for the frozen base weights.
        G = trainable == nil || trainable!.names.isEmpty ? nil : model.ensureGradients().base
        var low = Int.max
        if let trainable, trainable.adapters, let lora = model.lora {
            for s in lora.layout.adapters { low = min(low, s.block.map { $0 + 1 } ?? cfg.nLayers + 1) }
        }
        if let trainable {
            for name in trainable.names {
                guard let s = model.layout.spec(named: name) else { continue }
                let level = s.block.map { $0 + 1 } ?? ((name == "wte.weight" || name == "wpe.weight") ? 0 : cfg.nLayers + 1)
                low = min(low, level)
            }
        }
        lowest = low
        dropout = training && cfg.dropRate > 0
        dropP = cfg.dropRate
        rng = SeededGenerator(seed: seed)
        scale = 1 / Float(cfg.headDim).squareRoot()
        ws.prepare(rows: N, attCount: B * H * T * T, config: cfg)
    }

    func param(_ name: String) -> UnsafeMutablePointer<Float> { P + model.layout.spec(named: name)!.offset }
    /// A Linear weight: quantized when the model has a quantized base, float32 otherwise.
    func linearWeight(_ name: String) -> LinearWeight {
        if let q = model.quantizedBase?[name] { return .quantized(q) }
        return .dense(param(name))
    }
    func optionalParam(_ name: String) -> UnsafeMutablePointer<Float>? { model.layout.spec(named: name).map { P + $0.offset } }
    /// The gradient slot of a tensor, or nil when it is not trainable.
    func grad(_ name: String) -> UnsafeMutablePointer<Float>? {
        guard let G, let trainable, trainable.contains(name), let s = model.layout.spec(named: name) else { return nil }
        return G + s.offset
    }
    /// Whether block l keeps its activations for the backward pass; with the model's
    /// `recomputesActivations` none does: the backward pass recomputes each block from its input.
    func storesBlock(_ l: Int) -> Bool { trainable != nil && lowest <= l + 1 && !model.recomputesActivations }

    /// LoRA: adds alpha * (x A) B of the adapters of Linear `linear` (if any) to its output.
    func adapt(_ linear: String, _ x: UnsafePointer<Float>, rows: Int, width: Int, out: UnsafeMutablePointer<Float>) {
        model.lora?.forward(linear, x: x, rows: rows, ldOut: width, out: out)
    }

    /// LoRA backward of `adapt` (after the base Linear's backward wrote dX): adapter gradients
    /// when they train, and their share of dX.
    func adaptBackward(_ linear: String, dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, width: Int,
                       dX: UnsafeMutablePointer<Float>?) {
        model.lora?.backward(linear, dY: dY, ldY: width, x: x, rows: rows, dX: dX, train: trainable?.adapters == true)
    }

    // MARK: Validation

    func checkObjective(_ objective: Objective) throws {
        let targets = objective.targets
        guard model.layout.head == .languageModel else {
            throw PipelineError("a language-model loss needs the language-model head, but this model has a classifier head",
                                hint: "a classifier trains through ClassifierModel (Classification)")
        }
        guard targets.count == N else { throw PipelineError("got \(targets.count) targets for \(N) tokens") }
        for (i, t) in targets.enumerated() where t != -100 && (t < 0 || Int(t) >= V) {
            throw PipelineError("target id \(t) at batch row \(i / T), position \(i % T) is outside the vocabulary 0..<\(V) (use -100 to ignore a position)")
        }
    }

    // MARK: Forward

    /// Token + position embeddings of `tokens` into residual[0] (no dropout).
    func embed() {
        let x0 = ws.residual[0].base
        let (C, T, rows) = (self.C, self.T, model.embeddingRows())
        tokens.withUnsafeBufferPointer { tk in
            parallelRows(N, grain: 32) { r in
                for i in r { rows.write(token: tk[i], position: i % T, into: x0 + i * C) }
            }
        }
    }

    func forwardBlocks() {
        embed()
        if dropout {
            let x0 = ws.residual[0].base
            let m = ws.buffer(&ws.embMask, N * C)
            fillDropoutMask(m.base, count: N * C, p: dropP, rng: &rng)
            multiplyInPlace(x0, m.base, count: N * C)
        }
        for l in 0..<L { blockForward(l) }
    }

    /// Block `l` over every position: x + attn(ln_1(x)), then + mlp(ln_2(.)), into residual[l + 1].
    func blockForward(_ l: Int) {
        let a = ws.blockActivations(l, store: storesBlock(l), C: C)
        let x = ws.residual[l].base, out = ws.residual[l + 1].base
        let p = "h.\(l)."
        if dropout { a.ensureDropout(rows: ws.rowCapacity, C: C, attCount: ws.attCapacity) }

        layerNormForward(x, rows: N, dim: C, weight: param(p + "ln_1.weight"), bias: param(p + "ln_1.bias"),
                         out: a.ln1.base, mean: a.ln1Mean.base, rstd: a.ln1Rstd.base)
        linearForward(a.ln1.base, rows: N, inDim: C, outDim: 3 * C, weight: linearWeight(p + "attn.c_attn.weight"),
                      bias: optionalParam(p + "attn.c_attn.bias"), out: a.qkv.base)
        adapt(p + "attn.c_attn", a.ln1.base, rows: N, width: 3 * C, out: a.qkv.base)
        attentionForward(a)
        residualBranchOutput(p + "attn.c_proj", x: a.y.base, inDim: C, dropoutMask: a.projMask,
                             residual: x, out: a.resid2.base)

        layerNormForward(a.resid2.base, rows: N, dim: C, weight: param(p + "ln_2.weight"), bias: param(p + "ln_2.bias"),
                         out: a.ln2.base, mean: a.ln2Mean.base, rstd: a.ln2Rstd.base)
        linearForward(a.ln2.base, rows: N, inDim: C, outDim: 4 * C, weight: linearWeight(p + "mlp.c_fc.weight"),
                      bias: param(p + "mlp.c_fc.bias"), out: a.fc.base)
        adapt(p + "mlp.c_fc", a.ln2.base, rows: N, width: 4 * C, out: a.fc.base)
        geluForward(a.fc.base, count: N * 4 * C, out: a.gelu.base)
        residualBranchOutput(p + "mlp.c_proj", x: a.gelu.base, inDim: 4 * C, dropoutMask: a.mlpMask,
                             residual: a.resid2.base, out: out)
    }

    /// out = residual + dropout(x @ W + b) over the N rows, for the Linear `name` that ends a residual
    /// branch (attention's and the MLP's output projections); the dropout mask is drawn here when on.
    func residualBranchOutput(_ name: String, x: UnsafePointer<Float>, inDim: Int, dropoutMask: FloatBuffer?,
                              residual: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let tmp = ws.tmpC!.base
        linearForward(x, rows: N, inDim: inDim, outDim: C, weight: linearWeight(name + ".weight"), bias: param(name + ".bias"), out: tmp)
        adapt(name, x, rows: N, width: C, out: tmp)
        var mask: UnsafePointer<Float>? = nil
        if dropout, let m = dropoutMask {
            fillDropoutMask(m.base, count: N * C, p: dropP, rng: &rng)
            mask = UnsafePointer(m.base)
        }
        addScaled(residual, tmp, mask: mask, count: N * C, out: out)
    }

    /// Causal softmax attention per (row, head): scores = scale * Q K^T, masked softmax, then
    /// (dropout) and P V; each (row, head) pair is two single-threaded sgemms on one core.
    func attentionForward(_ a: BlockActivations) {
        let (B, T, H, hd, C, scale) = (self.B, self.T, self.H, self.hd, self.C, self.scale)
        let qkv = a.qkv.base, att = a.att.base, y = a.y.base
        var dropped: UnsafeMutablePointer<Float>? = nil
        var mask: UnsafeMutablePointer<Float>? = nil
        if dropout {
            fillDropoutMask(a.attMask!.base, count: B * H * T * T, p: dropP, rng: &rng)
            dropped = a.attDropped!.base
            mask = a.attMask!.base
        }
        BLASThreads.set(1)
        parallelRows(B * H, grain: 1) { r in
            for bh in r {
                let b = bh / H, h = bh % H
                let q = qkv + b * T * 3 * C + h * hd, k = q + C, v = q + 2 * C
                let s = att + bh * T * T
                sgemm(transB: true, M: T, N: T, K: hd, alpha: scale, A: q, lda: 3 * C, B: k, ldb: 3 * C,
                      beta: 0, C: s, ldc: T)
                for i in 0..<T {
                    let row = s + i * T
                    let sum = expShiftInPlace(row, i + 1, shift: rowMax(row, i + 1))
                    let inv = 1 / sum
                    for j in 0...i { row[j] *= inv }
                    for j in (i + 1)..<T { row[j] = 0 }
                }
                var pv = UnsafePointer(s)
                if let dropped, let mask {
                    let d = dropped + bh * T * T, m = mask + bh * T * T
                    for j in 0..<(T * T) { d[j] = s[j] * m[j] }
                    pv = UnsafePointer(d)
                }
                sgemm(M: T, N: hd, K: T, A: pv, lda: T, B: v, ldb: 3 * C, beta: 0, C: y + b * T * C + h * hd, ldc: C)
            }
        }
    }

    // MARK: Heads and losses

    /// The tied language-model head, x @ wte^T, for M rows of x [M, C] into out [M, V].
    func applyHead(_ x: UnsafePointer<Float>, rows M: Int, out: UnsafeMutablePointer<Float>) {
        if let q = model.quantizedBase?["wte.weight"] {
            linearForward(x, rows: M, inDim: C, outDim: V, weight: .quantized(q), bias: nil, out: out)
        } else {
            parallelSgemm(transB: true, M: M, N: V, K: C, A: x, lda: C, B: param("wte.weight"), ldb: C, beta: 0, C: out, ldc: V)
        }
        adapt("lm_head", x, rows: M, width: V, out: out)
    }

    /// Backward of `applyHead`: accumulates wte's gradient (when it trains) and writes dX [M, C].
    func applyHeadBackward(dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, rows M: Int, dX: UnsafeMutablePointer<Float>?) {
        let w = param("wte.weight")
        if let gw = grad("wte.weight") {
            parallelSgemm(transA: true, M: V, N: C, K: M, A: dOut, lda: V, B: x, ldb: C, beta: 1, C: gw, ldc: C)
        }
        if let dX, let q = model.quantizedBase?["wte.weight"] {
            quantizedLinearBackwardInput(dY: dOut, rows: M, q: q, dX: dX, accumulate: false)
        } else if let dX {
            parallelSgemm(M: M, N: C, K: V, A: dOut, lda: V, B: w, ldb: C, beta: 0, C: dX, ldc: C)
        }
        adaptBackward("lm_head", dY: dOut, x: x, rows: M, width: V, dX: dX)
    }

    /// Full-sequence LM logits [N, V] (final norm on every row).
    func lmLogits() -> UnsafeMutablePointer<Float> {
        let lnf = ws.buffer(&ws.lnf, N * C), mean = ws.buffer(&ws.lnfMean, N), rstd = ws.buffer(&ws.lnfRstd, N)
        layerNormForward(ws.residual[L].base, rows: N, dim: C, weight: param("ln_f.weight"), bias: param("ln_f.bias"),
                         out: lnf.base, mean: mean.base, rstd: rstd.base)
        let logits = ws.buffer(&ws.logits, N * V)
        applyHead(lnf.base, rows: N, out: logits.base)
        return logits.base
    }

    /// Cross-entropy of rows of `logits` [rows, width] against `targets` (-100 = ignored). Writes
    /// d(mean loss * gradScale)/d(logits) over the logits when `gradient` is set.
    func crossEntropy(_ logits: UnsafeMutablePointer<Float>, rows: Int, width: Int, targets: [Int32], gradient: Bool,
                      gradScale: Float) -> Float {
        let kept = targets.reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
        let rowLoss = ws.buffer(&ws.rowLoss, rows).base
        let g = kept > 0 ? gradScale / Float(kept) : 0
        targets.withUnsafeBufferPointer { tg in
            parallelRows(rows, grain: 4) { r in
                for i in r {
                    let row = logits + i * width
                    let t = Int(tg[i])
                    if t == -100 {
                        rowLoss[i] = 0
                        if gradient { row.update(repeating: 0, count: width) }
                        continue
                    }
                    let mx = rowMax(row, width)
                    let target = row[t]
                    let sum = expShiftInPlace(row, width, shift: mx)   // row now holds exp(l - max)
                    rowLoss[i] = -(target - mx - logf(sum))
                    if gradient {
                        let scale = g / sum
                        for j in 0..<width { row[j] *= scale }
                        row[t] -= g
                    }
                }
            }
        }
        if kept == 0 { return 0 }
        var total: Double = 0
        for i in 0..<rows { total += Double(rowLoss[i]) }
        return Float(total / Double(kept))
    }

    /// Computes the loss and, when asked, the gradient down to the last block's output (in dResid).
    func headLoss(_ objective: Objective, computeGradient: Bool, scale gradScale: Float) -> Float {
        let needBelow = lowest <= L   // some block or embedding is trainable
        let targets = objective.targets
        let logits = lmLogits()
        let loss = crossEntropy(logits, rows: N, width: V, targets: targets, gradient: computeGradient, gradScale: gradScale)
        guard computeGradient else { return loss }
        let lnfGradNeeded = needBelow || grad("ln_f.weight") != nil || grad("ln_f.bias") != nil
        let dLnf = lnfGradNeeded ? ws.buffer(&ws.dTmpC, ws.rowCapacity * C).base : nil
        applyHeadBackward(dOut: logits, x: ws.lnf!.base, rows: N, dX: dLnf)
        if let dLnf {
            let dResid = needBelow ? ws.buffer(&ws.dResid, ws.rowCapacity * C).base : nil
            layerNormBackward(dOut: dLnf, x: ws.residual[L].base, mean: ws.lnfMean!.base, rstd: ws.lnfRstd!.base,
                              weight: param("ln_f.weight"), rows: N, dim: C, dX: dResid, accumulateDX: false,
                              dW: grad("ln_f.weight"), dB: grad("ln_f.bias"))
        }
        return loss
    }

    // MARK: Backward through the blocks and embeddings

    func backwardBlocks() {
        guard lowest <= L else { return }
        let stop = max(lowest - 1, 0)
        for l in stride(from: L - 1, through: stop, by: -1) {
            blockBackward(l, needDX: lowest <= l)
        }
        if lowest == 0 { embeddingBackward() }
    }

    /// Backward of `blockForward`: d(block output) in dResid on entry, d(block input) on exit (with `needDX`).
    func blockBackward(_ l: Int, needDX: Bool) {
        if model.recomputesActivations { blockForward(l) }   // into the scratch activations, from residual[l]
        let a = model.recomputesActivations ? ws.blockActivations(l, store: false, C: C) : ws.stored[l]!
        let cap = ws.rowCapacity
        let dResid = ws.dResid!.base
        let dTmpC = ws.buffer(&ws.dTmpC, cap * C).base, dTmpC2 = ws.buffer(&ws.dTmpC2, cap * C).base
        let dBig = ws.buffer(&ws.dBig, cap * 4 * C).base, dQKV = ws.buffer(&ws.dQKV, cap * 3 * C).base
        let p = "h.\(l)."

        // MLP branch: out = resid2 + dropout(gelu(ln2 @ Wfc + b) @ Wproj + b)
        var df = UnsafePointer(dResid)
        if dropout {
            let m = a.mlpMask!.base
            parallelRows(N * C, grain: 8192) { r in for i in r { dTmpC[i] = dResid[i] * m[i] } }
            df = UnsafePointer(dTmpC)
        }
        linearBackward(dY: df, x: a.gelu.base, rows: N, inDim: 4 * C, outDim: C, weight: linearWeight(p + "mlp.c_proj.weight"),
                       dX: dBig, dW: grad(p + "mlp.c_proj.weight"), dB: grad(p + "mlp.c_proj.bias"))
        adaptBackward(p + "mlp.c_proj", dY: df, x: a.gelu.base, rows: N, width: C, dX: dBig)
        geluBackward(a.fc.base, dOut: dBig, count: N * 4 * C, dX: dBig)
        linearBackward(dY: dBig, x: a.ln2.base, rows: N, inDim: C, outDim: 4 * C, weight: linearWeight(p + "mlp.c_fc.weight"),
                       dX: dTmpC2, dW: grad(p + "mlp.c_fc.weight"), dB: grad(p + "mlp.c_fc.bias"))
        adaptBackward(p + "mlp.c_fc", dY: dBig, x: a.ln2.base, rows: N, width: 4 * C, dX: dTmpC2)
        layerNormBackward(dOut: dTmpC2, x: a.resid2.base, mean: a.ln2Mean.base, rstd: a.ln2Rstd.base,
                          weight: param(p + "ln_2.weight"), rows: N, dim: C, dX: dResid, accumulateDX: true,
                          dW: grad(p + "ln_2.weight"), dB: grad(p + "ln_2.bias"))

        // Attention branch: resid2 = x + dropout(attn(ln1(x)) @ Wproj + b)
        var da = UnsafePointer(dResid)
        if dropout {
            let m = a.projMask!.base
            parallelRows(N * C, grain: 8192) { r in for i in r { dTmpC[i] = dResid[i] * m[i] } }
            da = UnsafePointer(dTmpC)
        }
        linearBackward(dY: da, x: a.y.base, rows: N, inDim: C, outDim: C, weight: linearWeight(p + "attn.c_proj.weight"),
                       dX: dTmpC2, dW: grad(p + "attn.c_proj.weight"), dB: grad(p + "attn.c_proj.bias"))
        adaptBackward(p + "attn.c_proj", dY: da, x: a.y.base, rows: N, width: C, dX: dTmpC2)
        attentionBackward(a, dY: dTmpC2, dQKV: dQKV)
        let ln1Trainable = grad(p + "ln_1.weight") != nil || grad(p + "ln_1.bias") != nil
        let needDLn1 = needDX || ln1Trainable
        linearBackward(dY: dQKV, x: a.ln1.base, rows: N, inDim: C, outDim: 3 * C, weight: linearWeight(p + "attn.c_attn.weight"),
                       dX: needDLn1 ? dTmpC : nil, dW: grad(p + "attn.c_attn.weight"), dB: grad(p + "attn.c_attn.bias"))
        adaptBackward(p + "attn.c_attn", dY: dQKV, x: a.ln1.base, rows: N, width: 3 * C, dX: needDLn1 ? dTmpC : nil)
        if needDLn1 {
            layerNormBackward(dOut: dTmpC, x: ws.residual[l].base, mean: a.ln1Mean.base, rstd: a.ln1Rstd.base,
                              weight: param(p + "ln_1.weight"), rows: N, dim: C, dX: needDX ? dResid : nil,
                              accumulateDX: true, dW: grad(p + "ln_1.weight"), dB: grad(p + "ln_1.bias"))
        }
    }

    func attentionBackward(_ a: BlockActivations, dY: UnsafeMutablePointer<Float>, dQKV: UnsafeMutablePointer<Float>) {
        let (B, T, H, hd, C, scale) = (self.B, self.T, self.H, self.hd, self.C, self.scale)
        let qkv = a.qkv.base, att = a.att.base
        let dAtt = ws.buffer(&ws.dAtt, ws.attCapacity).base
        let dropped = dropout ? a.attDropped!.base : nil
        let mask = dropout ? a.attMask!.base : nil
        BLASThreads.set(1)
        parallelRows(B * H, grain: 1) { r in
            for bh in r {
                let b = bh / H, h = bh % H
                let q = qkv + b * T * 3 * C + h * hd, k = q + C, v = q + 2 * C
                let dq = dQKV + b * T * 3 * C + h * hd, dk = dq + C, dv = dq + 2 * C
                let dyh = dY + b * T * C + h * hd
                let s = att + bh * T * T
                let pv = dropped.map { UnsafePointer($0 + bh * T * T) } ?? UnsafePointer(s)
                let dp = dAtt + bh * T * T
                // dP = dY V^T ; dV = P^T dY
                sgemm(transB: true, M: T, N: T, K: hd, A: dyh, lda: C, B: v, ldb: 3 * C, beta: 0, C: dp, ldc: T)
                sgemm(transA: true, M: T, N: hd, K: T, A: pv, lda: T, B: dyh, ldb: C, beta: 0, C: dv, ldc: 3 * C)
                if let mask {
                    let m = mask + bh * T * T
                    for j in 0..<(T * T) { dp[j] *= m[j] }
                }
                // softmax backward per row, causal entries only
                for i in 0..<T {
                    let prow = s + i * T, drow = dp + i * T
                    var dot: Float = 0
                    for j in 0...i { dot += prow[j] * drow[j] }
                    for j in 0...i { drow[j] = prow[j] * (drow[j] - dot) }
                    for j in (i + 1)..<T { drow[j] = 0 }
                }
                // dQ = scale dS K ; dK = scale dS^T Q
                sgemm(M: T, N: hd, K: T, alpha: scale, A: dp, lda: T, B: k, ldb: 3 * C, beta: 0, C: dq, ldc: 3 * C)
                sgemm(transA: true, M: T, N: hd, K: T, alpha: scale, A: dp, lda: T, B: q, ldb: 3 * C, beta: 0, C: dk, ldc: 3 * C)
            }
        }
    }

    func embeddingBackward() {
        let d = ws.dResid!.base
        if dropout { multiplyInPlace(d, ws.embMask!.base, count: N * C) }
        let gwte = grad("wte.weight"), gwpe = grad("wpe.weight")
        let (C, T) = (self.C, self.T)
        tokens.withUnsafeBufferPointer { tk in
            // Split by columns so repeated tokens never race.
            parallelRows(C, grain: 64) { cr in
                for i in 0..<(self.N) {
                    let src = d + i * C
                    if let gwte {
                        let dst = gwte + Int(tk[i]) * C
                        for j in cr { dst[j] += src[j] }
                    }
                    if let gwpe {
                        let dst = gwpe + (i % T) * C
                        for j in cr { dst[j] += src[j] }
                    }
                }
            }
        }
    }
}

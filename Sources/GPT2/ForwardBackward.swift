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
    /// When only one position per row reaches the head, the last block runs its attention
    /// queries, output projection and MLP on those rows only ([B, C] output in residual[L]).
    var compactRows: [Int]? = nil

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
    func optionalParam(_ name: String) -> UnsafeMutablePointer<Float>? { model.layout.spec(named: name).map { P + $0.offset } }
    /// The gradient slot of a tensor, or nil when it is not trainable.
    func grad(_ name: String) -> UnsafeMutablePointer<Float>? {
        guard let G, let trainable, trainable.contains(name), let s = model.layout.spec(named: name) else { return nil }
        return G + s.offset
    }
    func storesBlock(_ l: Int) -> Bool { trainable != nil && lowest <= l + 1 }

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

    func checkPosition(_ position: ClassificationPosition) throws {
        switch position {
        case .last, .first: break
        case .perRow(let idx):
            guard idx.count == B else { throw PipelineError("got \(idx.count) positions for \(B) rows") }
            for (b, p) in idx.enumerated() where p < 0 || p >= T {
                throw PipelineError("selected position \(p) of row \(b) is outside 0..<\(T)")
            }
        case .average(let lengths):
            guard lengths.count == B else { throw PipelineError("got \(lengths.count) lengths for \(B) rows") }
            for (b, n) in lengths.enumerated() where n < 1 || n > T {
                throw PipelineError("length \(n) of row \(b) is outside 1...\(T)")
            }
        }
    }

    func checkObjective(_ objective: Objective) throws {
        switch objective {
        case .languageModel(let targets):
            guard model.layout.head == .languageModel else {
                throw PipelineError("a language-model loss needs the language-model head, but this model has a classifier head")
            }
            guard targets.count == N else { throw PipelineError("got \(targets.count) targets for \(N) tokens") }
            for (i, t) in targets.enumerated() where t != -100 && (t < 0 || Int(t) >= V) {
                throw PipelineError("target id \(t) at batch row \(i / T), position \(i % T) is outside the vocabulary 0..<\(V) (use -100 to ignore a position)")
            }
        case .classification(let labels, let position):
            guard case .classifier(let k) = model.layout.head else {
                throw PipelineError("a classification loss needs a classifier head, but this model has the language-model head")
            }
            guard labels.count == B else { throw PipelineError("got \(labels.count) labels for \(B) rows") }
            for (b, y) in labels.enumerated() where y < 0 || Int(y) >= k {
                throw PipelineError("label \(y) of row \(b) is outside 0..<\(k)")
            }
            try checkPosition(position)
        }
    }

    // MARK: Forward

    func forwardBlocks() {
        let x0 = ws.residual[0].base
        let wte = param("wte.weight"), wpe = param("wpe.weight")
        let toks = tokens
        let (C, T) = (self.C, self.T)
        toks.withUnsafeBufferPointer { tk in
            parallelRows(N, grain: 32) { r in
                for i in r {
                    let e = wte + Int(tk[i]) * C, p = wpe + (i % T) * C, o = x0 + i * C
                    for j in 0..<C { o[j] = e[j] + p[j] }
                }
            }
        }
        if dropout {
            let m = ws.buffer(&ws.embMask, N * C)
            fillDropoutMask(m.base, count: N * C, p: dropP, rng: &rng)
            multiplyInPlace(x0, m.base, count: N * C)
        }
        for l in 0..<L { blockForward(l, selectedRows: l == L - 1 ? compactRows : nil) }
    }

    /// Enables the compact last block for heads read at one position per row.
    func useCompactLastBlock(for position: ClassificationPosition) {
        compactRows = selectedRows(position)
    }

    /// Block `l` over every position, or, with `selectedRows` (one row of the batch per sequence,
    /// for heads read at one position: the compact last block), keys and values at every position
    /// and everything after attention at the selected rows only.
    func blockForward(_ l: Int, selectedRows: [Int]? = nil) {
        let a = ws.blockActivations(l, store: storesBlock(l), C: C)
        let x = ws.residual[l].base, out = ws.residual[l + 1].base
        let p = "h.\(l)."
        if dropout { a.ensureDropout(rows: ws.rowCapacity, C: C, attCount: ws.attCapacity) }

        layerNormForward(x, rows: N, dim: C, weight: param(p + "ln_1.weight"), bias: param(p + "ln_1.bias"),
                         out: a.ln1.base, mean: a.ln1Mean.base, rstd: a.ln1Rstd.base)
        linearForward(a.ln1.base, rows: N, inDim: C, outDim: 3 * C, weight: param(p + "attn.c_attn.weight"),
                      bias: optionalParam(p + "attn.c_attn.bias"), out: a.qkv.base)
        adapt(p + "attn.c_attn", a.ln1.base, rows: N, width: 3 * C, out: a.qkv.base)
        // R rows go on from here; their residual input is x itself or the selected rows of x.
        let R: Int, residualIn: UnsafePointer<Float>
        if let rows = selectedRows {
            selectedAttentionForward(a, rows: rows)
            for (b, r) in rows.enumerated() { (a.resid2.base + b * C).update(from: x + r * C, count: C) }
            R = B
            residualIn = UnsafePointer(a.resid2.base)
        } else {
            attentionForward(a)
            R = N
            residualIn = UnsafePointer(x)
        }
        residualBranchOutput(p + "attn.c_proj", x: a.y.base, rows: R, inDim: C, dropoutMask: a.projMask,
                             residual: residualIn, out: a.resid2.base)

        layerNormForward(a.resid2.base, rows: R, dim: C, weight: param(p + "ln_2.weight"), bias: param(p + "ln_2.bias"),
                         out: a.ln2.base, mean: a.ln2Mean.base, rstd: a.ln2Rstd.base)
        linearForward(a.ln2.base, rows: R, inDim: C, outDim: 4 * C, weight: param(p + "mlp.c_fc.weight"),
                      bias: param(p + "mlp.c_fc.bias"), out: a.fc.base)
        adapt(p + "mlp.c_fc", a.ln2.base, rows: R, width: 4 * C, out: a.fc.base)
        geluForward(a.fc.base, count: R * 4 * C, out: a.gelu.base)
        residualBranchOutput(p + "mlp.c_proj", x: a.gelu.base, rows: R, inDim: 4 * C, dropoutMask: a.mlpMask,
                             residual: a.resid2.base, out: out)
    }

    /// out = residual + dropout(x @ W + b) for the Linear `name` that ends a residual branch
    /// (attention's and the MLP's output projections); the dropout mask is drawn here when on.
    func residualBranchOutput(_ name: String, x: UnsafePointer<Float>, rows R: Int, inDim: Int, dropoutMask: FloatBuffer?,
                              residual: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let tmp = ws.tmpC!.base
        linearForward(x, rows: R, inDim: inDim, outDim: C, weight: param(name + ".weight"), bias: param(name + ".bias"), out: tmp)
        adapt(name, x, rows: R, width: C, out: tmp)
        var mask: UnsafePointer<Float>? = nil
        if dropout, let m = dropoutMask {
            fillDropoutMask(m.base, count: R * C, p: dropP, rng: &rng)
            mask = UnsafePointer(m.base)
        }
        addScaled(residual, tmp, mask: mask, count: R * C, out: out)
    }

    /// Attention for one query per (row, head), the selected row's: scores [1, pos + 1] stored at
    /// att[bh * T], output y [B, C].
    func selectedAttentionForward(_ a: BlockActivations, rows: [Int]) {
        let (B, T, H, hd, C, scale) = (self.B, self.T, self.H, self.hd, self.C, self.scale)
        let qkv = a.qkv.base, att = a.att.base, y = a.y.base
        var dropped: UnsafeMutablePointer<Float>? = nil, mask: UnsafeMutablePointer<Float>? = nil
        if dropout {
            fillDropoutMask(a.attMask!.base, count: B * H * T, p: dropP, rng: &rng)
            dropped = a.attDropped!.base
            mask = a.attMask!.base
        }
        BLASThreads.set(1)
        rows.withUnsafeBufferPointer { sel in
            parallelRows(B * H, grain: 1) { r in
                for bh in r {
                    let b = bh / H, h = bh % H
                    let n = sel[b] - b * T + 1
                    let q = qkv + sel[b] * 3 * C + h * hd
                    let k = qkv + b * T * 3 * C + C + h * hd, v = k + C
                    let s = att + bh * T
                    sgemm(transB: true, M: 1, N: n, K: hd, alpha: scale, A: q, lda: 3 * C, B: k, ldb: 3 * C, beta: 0, C: s, ldc: n)
                    let sum = expShiftInPlace(s, n, shift: rowMax(s, n))
                    let inv = 1 / sum
                    for j in 0..<n { s[j] *= inv }
                    var pv = UnsafePointer(s)
                    if let dropped, let mask {
                        let d = dropped + bh * T, m = mask + bh * T
                        for j in 0..<n { d[j] = s[j] * m[j] }
                        pv = UnsafePointer(d)
                    }
                    sgemm(M: 1, N: hd, K: n, A: pv, lda: n, B: v, ldb: 3 * C, beta: 0, C: y + b * C + h * hd, ldc: C)
                }
            }
        }
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

    /// Rows of the final hidden state used by `position` (nil for `.average`, which uses all rows).
    func selectedRows(_ position: ClassificationPosition) -> [Int]? {
        switch position {
        case .last: return (0..<B).map { $0 * T + T - 1 }
        case .first: return (0..<B).map { $0 * T }
        case .perRow(let idx): return idx.enumerated().map { $0 * T + $1 }
        case .average: return nil
        }
    }

    var outputs: Int {
        if case .classifier(let k) = model.layout.head { return k }
        return V
    }

    /// head(x) for M rows of x [M, C] into out [M, outputs].
    func applyHead(_ x: UnsafePointer<Float>, rows M: Int, out: UnsafeMutablePointer<Float>) {
        switch model.layout.head {
        case .languageModel:
            parallelSgemm(transB: true, M: M, N: V, K: C, A: x, lda: C, B: param("wte.weight"), ldb: C, beta: 0, C: out, ldc: V)
            adapt("lm_head", x, rows: M, width: V, out: out)
        case .classifier(let k):
            let bias = param("out_head.bias")
            for i in 0..<M { (out + i * k).update(from: bias, count: k) }
            parallelSgemm(transB: true, M: M, N: k, K: C, A: x, lda: C, B: param("out_head.weight"), ldb: C, beta: 1, C: out, ldc: k)
            adapt("out_head", x, rows: M, width: k, out: out)
        }
    }

    /// Backward of `applyHead`: accumulates head-weight grads and writes dX [M, C].
    func applyHeadBackward(dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, rows M: Int, dX: UnsafeMutablePointer<Float>?) {
        switch model.layout.head {
        case .languageModel:
            let w = param("wte.weight")
            if let gw = grad("wte.weight") {
                parallelSgemm(transA: true, M: V, N: C, K: M, A: dOut, lda: V, B: x, ldb: C, beta: 1, C: gw, ldc: C)
            }
            if let dX { parallelSgemm(M: M, N: C, K: V, A: dOut, lda: V, B: w, ldb: C, beta: 0, C: dX, ldc: C) }
            adaptBackward("lm_head", dY: dOut, x: x, rows: M, width: V, dX: dX)
        case .classifier(let k):
            if let gw = grad("out_head.weight") {
                parallelSgemm(transA: true, M: k, N: C, K: M, A: dOut, lda: k, B: x, ldb: C, beta: 1, C: gw, ldc: C)
            }
            if let gb = grad("out_head.bias") { columnSumsAccumulate(dOut, rows: M, cols: k, into: gb) }
            if let dX { parallelSgemm(M: M, N: C, K: k, A: dOut, lda: k, B: param("out_head.weight"), ldb: C, beta: 0, C: dX, ldc: C) }
            adaptBackward("out_head", dY: dOut, x: x, rows: M, width: k, dX: dX)
        }
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

    /// Head output at the selected position of every row: ([B, outputs] pointer, count).
    /// Keeps the gathered rows (tmpC2), their norm and statistics for the backward pass.
    func selectedLogits(_ position: ClassificationPosition) -> (UnsafeMutablePointer<Float>, Int) {
        let out = outputs
        let logits = ws.buffer(&ws.logits, B * out)
        let lnf = ws.buffer(&ws.lnf, N * C), mean = ws.buffer(&ws.lnfMean, N), rstd = ws.buffer(&ws.lnfRstd, N)
        let wLn = param("ln_f.weight"), bLn = param("ln_f.bias")
        if let rows = selectedRows(position) {
            let gathered = ws.tmpC2!.base
            for (b, r) in rows.enumerated() {
                let source = compactRows == nil ? r : b   // the compact last block already gathered
                (gathered + b * C).update(from: ws.residual[L].base + source * C, count: C)
            }
            layerNormForward(gathered, rows: B, dim: C, weight: wLn, bias: bLn, out: lnf.base, mean: mean.base, rstd: rstd.base)
            applyHead(lnf.base, rows: B, out: logits.base)
        } else if case .average(let lengths) = position {
            layerNormForward(ws.residual[L].base, rows: N, dim: C, weight: wLn, bias: bLn, out: lnf.base, mean: mean.base, rstd: rstd.base)
            let pooled = ws.tmpC2!.base
            for b in 0..<B {
                let o = pooled + b * C
                o.update(repeating: 0, count: C)
                for t in 0..<lengths[b] {
                    let src = lnf.base + (b * T + t) * C
                    for j in 0..<C { o[j] += src[j] }
                }
                let inv = 1 / Float(lengths[b])
                for j in 0..<C { o[j] *= inv }
            }
            applyHead(pooled, rows: B, out: logits.base)
        }
        return (logits.base, B * out)
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
        switch objective {
        case .languageModel(let targets):
            let logits = lmLogits()
            let loss = crossEntropy(logits, rows: N, width: V, targets: targets, gradient: computeGradient, gradScale: gradScale)
            if computeGradient {
                let lnfGradNeeded = needBelow || grad("ln_f.weight") != nil || grad("ln_f.bias") != nil
                let dLnf = lnfGradNeeded ? ws.buffer(&ws.dTmpC, ws.rowCapacity * C).base : nil
                applyHeadBackward(dOut: logits, x: ws.lnf!.base, rows: N, dX: dLnf)
                if let dLnf {
                    let dResid = needBelow ? ws.buffer(&ws.dResid, ws.rowCapacity * C).base : nil
                    layerNormBackward(dOut: dLnf, x: ws.residual[L].base, mean: ws.lnfMean!.base, rstd: ws.lnfRstd!.base,
                                      weight: param("ln_f.weight"), rows: N, dim: C, dX: dResid, accumulateDX: false,
                                      dW: grad("ln_f.weight"), dB: grad("ln_f.bias"))
                }
            }
            return loss
        case .classification(let labels, let position):
            let (logits, _) = selectedLogits(position)
            let k = outputs
            let loss = crossEntropy(logits, rows: B, width: k, targets: labels, gradient: computeGradient, gradScale: gradScale)
            guard computeGradient else { return loss }
            let lnfGradNeeded = needBelow || grad("ln_f.weight") != nil || grad("ln_f.bias") != nil
            let dHidden = ws.buffer(&ws.dTmpC2, ws.rowCapacity * C).base
            if let rows = selectedRows(position) {
                applyHeadBackward(dOut: logits, x: ws.lnf!.base, rows: B, dX: lnfGradNeeded ? dHidden : nil)
                guard lnfGradNeeded else { return loss }
                let dRows = ws.buffer(&ws.dTmpC, ws.rowCapacity * C).base
                layerNormBackward(dOut: dHidden, x: ws.tmpC2!.base, mean: ws.lnfMean!.base, rstd: ws.lnfRstd!.base,
                                  weight: param("ln_f.weight"), rows: B, dim: C, dX: needBelow ? dRows : nil,
                                  accumulateDX: false, dW: grad("ln_f.weight"), dB: grad("ln_f.bias"))
                if needBelow {
                    let dResid = ws.buffer(&ws.dResid, ws.rowCapacity * C).base
                    if compactRows != nil {
                        dResid.update(from: dRows, count: B * C)
                    } else {
                        dResid.update(repeating: 0, count: N * C)
                        for (b, r) in rows.enumerated() { (dResid + r * C).update(from: dRows + b * C, count: C) }
                    }
                }
            } else if case .average(let lengths) = position {
                // dHidden holds d(pooled) [B, C]; spread it over each row's real positions.
                applyHeadBackward(dOut: logits, x: ws.tmpC2!.base, rows: B, dX: lnfGradNeeded ? dHidden : nil)
                guard lnfGradNeeded else { return loss }
                let dLnf = ws.buffer(&ws.dTmpC, ws.rowCapacity * C).base
                dLnf.update(repeating: 0, count: N * C)
                for b in 0..<B {
                    let inv = 1 / Float(lengths[b])
                    for t in 0..<lengths[b] {
                        let d = dLnf + (b * T + t) * C, s = dHidden + b * C
                        for j in 0..<C { d[j] = s[j] * inv }
                    }
                }
                let dResid = needBelow ? ws.buffer(&ws.dResid, ws.rowCapacity * C).base : nil
                layerNormBackward(dOut: dLnf, x: ws.residual[L].base, mean: ws.lnfMean!.base, rstd: ws.lnfRstd!.base,
                                  weight: param("ln_f.weight"), rows: N, dim: C, dX: dResid, accumulateDX: false,
                                  dW: grad("ln_f.weight"), dB: grad("ln_f.bias"))
            }
            return loss
        }
    }

    // MARK: Backward through the blocks and embeddings

    func backwardBlocks() {
        guard lowest <= L else { return }
        let stop = max(lowest - 1, 0)
        for l in stride(from: L - 1, through: stop, by: -1) {
            blockBackward(l, needDX: lowest <= l, selectedRows: l == L - 1 ? compactRows : nil)
        }
        if lowest == 0 { embeddingBackward() }
    }

    /// Backward of `blockForward`; with `selectedRows` (the compact last block), dResid holds
    /// [B, C] on entry and [N, C] on exit.
    func blockBackward(_ l: Int, needDX: Bool, selectedRows: [Int]? = nil) {
        let a = ws.stored[l]!
        let cap = ws.rowCapacity
        let dResid = ws.dResid!.base
        let dTmpC = ws.buffer(&ws.dTmpC, cap * C).base, dTmpC2 = ws.buffer(&ws.dTmpC2, cap * C).base
        let dBig = ws.buffer(&ws.dBig, cap * 4 * C).base, dQKV = ws.buffer(&ws.dQKV, cap * 3 * C).base
        let p = "h.\(l)."
        // Rows past attention: every position, or one per sequence.
        let R = selectedRows == nil ? N : B

        // MLP branch: out = resid2 + dropout(gelu(ln2 @ Wfc + b) @ Wproj + b)
        var df = UnsafePointer(dResid)
        if dropout {
            let m = a.mlpMask!.base
            parallelRows(R * C, grain: 8192) { r in for i in r { dTmpC[i] = dResid[i] * m[i] } }
            df = UnsafePointer(dTmpC)
        }
        linearBackward(dY: df, x: a.gelu.base, rows: R, inDim: 4 * C, outDim: C, weight: param(p + "mlp.c_proj.weight"),
                       dX: dBig, dW: grad(p + "mlp.c_proj.weight"), dB: grad(p + "mlp.c_proj.bias"))
        adaptBackward(p + "mlp.c_proj", dY: df, x: a.gelu.base, rows: R, width: C, dX: dBig)
        geluBackward(a.fc.base, dOut: dBig, count: R * 4 * C, dX: dBig)
        linearBackward(dY: dBig, x: a.ln2.base, rows: R, inDim: C, outDim: 4 * C, weight: param(p + "mlp.c_fc.weight"),
                       dX: dTmpC2, dW: grad(p + "mlp.c_fc.weight"), dB: grad(p + "mlp.c_fc.bias"))
        adaptBackward(p + "mlp.c_fc", dY: dBig, x: a.ln2.base, rows: R, width: 4 * C, dX: dTmpC2)
        layerNormBackward(dOut: dTmpC2, x: a.resid2.base, mean: a.ln2Mean.base, rstd: a.ln2Rstd.base,
                          weight: param(p + "ln_2.weight"), rows: R, dim: C, dX: dResid, accumulateDX: true,
                          dW: grad(p + "ln_2.weight"), dB: grad(p + "ln_2.bias"))

        // Attention branch: resid2 = x + dropout(attn(ln1(x)) @ Wproj + b)
        var da = UnsafePointer(dResid)
        if dropout {
            let m = a.projMask!.base
            parallelRows(R * C, grain: 8192) { r in for i in r { dTmpC[i] = dResid[i] * m[i] } }
            da = UnsafePointer(dTmpC)
        }
        linearBackward(dY: da, x: a.y.base, rows: R, inDim: C, outDim: C, weight: param(p + "attn.c_proj.weight"),
                       dX: dTmpC2, dW: grad(p + "attn.c_proj.weight"), dB: grad(p + "attn.c_proj.bias"))
        adaptBackward(p + "attn.c_proj", dY: da, x: a.y.base, rows: R, width: C, dX: dTmpC2)
        if let rows = selectedRows {
            // Spread d(resid2) back to the full [N, C] stream (the residual path of the selected rows).
            let dCompact = ws.buffer(&ws.dCompact, B * C).base
            dCompact.update(from: dResid, count: B * C)
            dResid.update(repeating: 0, count: N * C)
            for (b, r) in rows.enumerated() { (dResid + r * C).update(from: dCompact + b * C, count: C) }
            selectedAttentionBackward(a, rows: rows, dY: dTmpC2, dQKV: dQKV)
        } else {
            attentionBackward(a, dY: dTmpC2, dQKV: dQKV)
        }
        let ln1Trainable = grad(p + "ln_1.weight") != nil || grad(p + "ln_1.bias") != nil
        let needDLn1 = needDX || ln1Trainable
        linearBackward(dY: dQKV, x: a.ln1.base, rows: N, inDim: C, outDim: 3 * C, weight: param(p + "attn.c_attn.weight"),
                       dX: needDLn1 ? dTmpC : nil, dW: grad(p + "attn.c_attn.weight"), dB: grad(p + "attn.c_attn.bias"))
        adaptBackward(p + "attn.c_attn", dY: dQKV, x: a.ln1.base, rows: N, width: 3 * C, dX: needDLn1 ? dTmpC : nil)
        if needDLn1 {
            layerNormBackward(dOut: dTmpC, x: ws.residual[l].base, mean: a.ln1Mean.base, rstd: a.ln1Rstd.base,
                              weight: param(p + "ln_1.weight"), rows: N, dim: C, dX: needDX ? dResid : nil,
                              accumulateDX: true, dW: grad(p + "ln_1.weight"), dB: grad(p + "ln_1.bias"))
        }
    }

    /// Backward of `selectedAttentionForward`: dY [B, C] in, dQKV [N, 3C] out (zero where unused).
    func selectedAttentionBackward(_ a: BlockActivations, rows: [Int], dY dTmpC2: UnsafeMutablePointer<Float>,
                                   dQKV: UnsafeMutablePointer<Float>) {
        let (B, T, H, hd, C, scale) = (self.B, self.T, self.H, self.hd, self.C, self.scale)
        dQKV.update(repeating: 0, count: N * 3 * C)
        let qkv = a.qkv.base, att = a.att.base
        let dAtt = ws.buffer(&ws.dAtt, ws.attCapacity).base
        let dropped = dropout ? a.attDropped!.base : nil
        let mask = dropout ? a.attMask!.base : nil
        BLASThreads.set(1)
        rows.withUnsafeBufferPointer { sel in
            parallelRows(B * H, grain: 1) { r in
                for bh in r {
                    let b = bh / H, h = bh % H
                    let n = sel[b] - b * T + 1
                    let q = qkv + sel[b] * 3 * C + h * hd
                    let k = qkv + b * T * 3 * C + C + h * hd, v = k + C
                    let dq = dQKV + sel[b] * 3 * C + h * hd
                    let dk = dQKV + b * T * 3 * C + C + h * hd, dv = dk + C
                    let dyh = UnsafePointer(dTmpC2 + b * C + h * hd)
                    let s = att + bh * T
                    let pv = dropped.map { UnsafePointer($0 + bh * T) } ?? UnsafePointer(s)
                    let dp = dAtt + bh * T
                    sgemm(transB: true, M: 1, N: n, K: hd, A: dyh, lda: C, B: v, ldb: 3 * C, beta: 0, C: dp, ldc: n)
                    sgemm(transA: true, M: n, N: hd, K: 1, A: pv, lda: n, B: dyh, ldb: C, beta: 0, C: dv, ldc: 3 * C)
                    if let mask {
                        let m = mask + bh * T
                        for j in 0..<n { dp[j] *= m[j] }
                    }
                    var dot: Float = 0
                    for j in 0..<n { dot += s[j] * dp[j] }
                    for j in 0..<n { dp[j] = s[j] * (dp[j] - dot) }
                    sgemm(M: 1, N: hd, K: n, alpha: scale, A: dp, lda: n, B: k, ldb: 3 * C, beta: 0, C: dq, ldc: 3 * C)
                    sgemm(transA: true, M: n, N: hd, K: 1, alpha: scale, A: dp, lda: n, B: q, ldb: 3 * C, beta: 0, C: dk, ldc: 3 * C)
                }
            }
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

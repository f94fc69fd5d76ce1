import ArtifactKit
import Foundation

/// GPT-2 split at a block boundary, for fine-tuning with frozen lower blocks (chapter 6): the
/// frozen part runs once per example (`hiddenStates`), and every training step runs only the
/// trainable upper blocks and the final LayerNorm forward (`forwardTop`) and backward
/// (`backwardTop`), starting from those cached hidden states. The classification head, pooling
/// and loss stay with the caller, who passes back the gradient of the final normalised states.
///
/// Built on `Pass` (ForwardBackward.swift): same kernels, same workspace, same numbers as
/// `GPT2Model.forwardBackward`. Dropout is not supported here (the book's drop_rate is 0.0).
public final class GPT2Trunk {
    public let model: GPT2Model
    private var pass: Pass?
    private var passHasTokens = false
    /// What `forwardLastBlockSelected` kept for `backwardTop`.
    var selected: SelectedLastBlockState?

    public init(model: GPT2Model) throws {
        guard model.config.dropRate == 0 else {
            throw PipelineError("drop_rate \(model.config.dropRate): the split trunk runs without dropout",
                                hint: "use a model config with drop_rate 0 (the book's setting for fine-tuning)")
        }
        self.model = model
    }

    public var layout: ParameterLayout { model.layout }

    /// Copies the parameters `range` of the vector into the model (after an optimizer step). The
    /// vector is the base parameters in layout order followed, with LoRA adapters attached, by the
    /// adapter buffer (indices from `layout.totalCount` on); `values[i]` is its index
    /// `vectorStart + i`, so a caller may hold only a suffix of the vector (a QLoRA classifier
    /// holds its head and adapters, the model the frozen base). `range` must lie at or above `vectorStart`.
    public func loadParameters(_ values: [Float], range: Range<Int>, vectorStart: Int = 0) {
        precondition(range.isEmpty || range.lowerBound >= vectorStart, "parameters \(range) are below the caller's vector (from \(vectorStart))")
        let total = layout.totalCount
        let base = range.clamped(to: 0..<total)
        if !base.isEmpty {
            model.withParameters { p in
                values.withUnsafeBufferPointer { v in
                    (p.baseAddress! + base.lowerBound).update(from: v.baseAddress! + base.lowerBound - vectorStart, count: base.count)
                }
            }
        }
        if let lora = model.lora {
            let extra = range.clamped(to: total..<(total + lora.count))
            if !extra.isEmpty {
                values.withUnsafeBufferPointer { v in
                    lora.setValues(UnsafeBufferPointer(rebasing: v[(extra.lowerBound - vectorStart)..<(extra.upperBound - vectorStart)]),
                                   range: (extra.lowerBound - total)..<(extra.upperBound - total))
                }
            }
        }
    }

    /// The trainable set of a top pass: blocks `startBlock...`, the final LayerNorm, and the embeddings when they run.
    private func topSet(startBlock: Int, embeddings: Bool) -> TrainableSet {
        // A model with LoRA adapters trains only them (the book freezes every original parameter).
        if model.lora != nil { return .loraAdapters }
        var names = Set(layout.tensors.filter { ($0.block ?? -1) >= startBlock }.map(\.name))
        names.insert("ln_f.weight")
        names.insert("ln_f.bias")
        if embeddings { names.insert("wte.weight"); names.insert("wpe.weight") }
        return TrainableSet(names: names)
    }

    /// Embeddings, then blocks `0..<endBlock` (nothing kept): the hidden states entering block
    /// `endBlock`, [batch, seqLen, embDim].
    public func hiddenStates(tokens: [Int32], batch: Int, seqLen: Int, endBlock: Int) throws -> [Float] {
        guard (0...model.config.nLayers).contains(endBlock) else {
            throw PipelineError("block \(endBlock) is outside 0...\(model.config.nLayers)")
        }
        let p = try Pass(model: model, tokens: tokens, batch: batch, seqLen: seqLen, trainable: nil, training: false, seed: 0)
        pass = nil
        selected = nil
        p.embed()
        for l in 0..<endBlock { p.blockForward(l) }
        return Array(UnsafeBufferPointer(start: p.ws.residual[endBlock].base, count: batch * seqLen * p.C))
    }

    /// Blocks `startBlock..<nLayers` and the final LayerNorm on every position, from `hidden`
    /// (the states entering `startBlock`) or, when `hidden` is nil, from the embeddings of `tokens`
    /// (then `startBlock` must be 0). With `keepActivations`, a `backwardTop` may follow.
    /// Returns the normalised final states [batch, seqLen, embDim].
    public func forwardTop(tokens: [Int32]?, hidden: [Float]?, batch: Int, seqLen: Int, startBlock: Int,
                           keepActivations: Bool) throws -> [Float] {
        let L = model.config.nLayers, C = model.config.embDim
        guard (0...L).contains(startBlock) else { throw PipelineError("block \(startBlock) is outside 0...\(L)") }
        guard hidden != nil || startBlock == 0 else { throw PipelineError("forwardTop from tokens must start at block 0") }
        if let h = hidden, h.count != batch * seqLen * C {
            throw PipelineError("got \(h.count) hidden values for a \(batch) x \(seqLen) x \(C) batch")
        }
        let toks = tokens ?? [Int32](repeating: 0, count: batch * seqLen)
        let set = keepActivations ? topSet(startBlock: startBlock, embeddings: hidden == nil) : nil
        if let set, !set.names.isEmpty { _ = model.ensureGradients() }
        let p = try Pass(model: model, tokens: toks, batch: batch, seqLen: seqLen, trainable: set, training: false, seed: 0)
        if let h = hidden {
            h.withUnsafeBufferPointer { p.ws.residual[startBlock].base.update(from: $0.baseAddress!, count: $0.count) }
        } else {
            p.embed()
        }
        for l in startBlock..<L { p.blockForward(l) }
        let N = batch * seqLen
        let lnf = p.ws.buffer(&p.ws.lnf, N * C), mean = p.ws.buffer(&p.ws.lnfMean, N), rstd = p.ws.buffer(&p.ws.lnfRstd, N)
        layerNormForward(p.ws.residual[L].base, rows: N, dim: C, weight: p.param("ln_f.weight"), bias: p.param("ln_f.bias"),
                         out: lnf.base, mean: mean.base, rstd: rstd.base)
        pass = keepActivations ? p : nil
        selected = nil
        passHasTokens = hidden == nil
        return Array(UnsafeBufferPointer(start: lnf.base, count: N * C))
    }

    /// Backpropagates `dOutput` (the loss gradient w.r.t. the last `forwardTop` output) through
    /// the final LayerNorm and blocks `startBlock...` (and the embeddings for a pass from tokens),
    /// and ADDS the parameter gradients of exactly those tensors into `gradients` (the flat layout,
    /// followed by the LoRA adapters when they train). Nothing else of `gradients` is touched.
    /// After `forwardLastBlockSelected`, `dOutput` is [batch, embDim] and the gradients are the last block's and ln_f's.
    /// `gradients[i]` is the gradient of the vector's index `vectorStart + i` (see `loadParameters`):
    /// every tensor that trains must lie at or above it.
    public func backwardTop(dOutput: [Float], addingInto gradients: UnsafeMutableBufferPointer<Float>, vectorStart: Int = 0) throws {
        guard gradients.count >= layout.totalCount + (model.lora?.count ?? 0) - vectorStart else {
            throw PipelineError("backwardTop: a gradient buffer of \(gradients.count) floats for \(layout.totalCount) parameters from \(vectorStart)")
        }
        // The vector's index 0; only indices at or above vectorStart are ever written through it.
        let G = gradients.baseAddress! - vectorStart
        if let s = selected {
            guard vectorStart == 0 else { throw PipelineError("backwardTop: the selected-position pass writes the whole gradient vector") }
            selected = nil
            try backwardSelected(s, dOutput: dOutput, addingInto: G)
            return
        }
        guard let p = pass else { throw PipelineError("backwardTop needs a forwardTop with keepActivations just before") }
        pass = nil
        let C = p.C, L = p.L, N = p.N
        guard dOutput.count == N * C else { throw PipelineError("got \(dOutput.count) output gradients for \(N) x \(C) states") }
        let names = p.trainable!.names
        let ranges = layout.tensors.filter { names.contains($0.name) }.map(\.range)
        if let below = ranges.first(where: { $0.lowerBound < vectorStart }) {
            throw PipelineError("backwardTop: parameters \(below) train but the gradient vector starts at \(vectorStart)")
        }
        if !ranges.isEmpty {
            model.withGradients { g in for r in ranges { (g.baseAddress! + r.lowerBound).update(repeating: 0, count: r.count) } }
        }
        let lora = p.trainable!.adapters ? model.lora : nil
        lora?.zeroGradients()
        let dResid = p.ws.buffer(&p.ws.dResid, p.ws.rowCapacity * C).base
        dOutput.withUnsafeBufferPointer { d in
            layerNormBackward(dOut: d.baseAddress!, x: p.ws.residual[L].base, mean: p.ws.lnfMean!.base, rstd: p.ws.lnfRstd!.base,
                              weight: p.param("ln_f.weight"), rows: N, dim: C, dX: dResid, accumulateDX: false,
                              dW: p.grad("ln_f.weight"), dB: p.grad("ln_f.bias"))
        }
        p.backwardBlocks()
        if !ranges.isEmpty {   // LoRA-only training: no base gradient buffer at all
            model.withGradients { g in
                for r in ranges { addInPlace(G + r.lowerBound, g.baseAddress! + r.lowerBound, count: r.count) }
            }
        }
        if let lora {
            // The adapters' gradients at their place in the extended vector (base parameters, then adapters).
            addInPlace(G + layout.totalCount, lora.ensureGradients().base, count: lora.count)
        }
    }
}

import ArtifactKit
import Quantization
import COpenBLAS
import Foundation

/// What the loss is computed on. (The chapter-6 classifier's loss is not here: it lives in the
/// Classification module, `ClassifierModel` over `GPT2Trunk`.)
public enum Objective: Equatable, Sendable {
    /// Next-token cross-entropy over all positions; `targets` has one id per token, with -100
    /// for positions to ignore (mean over the kept targets, 0 when all are ignored).
    case languageModel(targets: [Int32])

    var targets: [Int32] {
        switch self { case .languageModel(let targets): return targets }
    }
}

/// Raised when training must stop (non-finite loss).
public struct TrainingError: Error, CustomStringConvertible, LocalizedError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// GPT-2 (the book's GPTModel) over one flat parameter buffer laid out by `ParameterLayout`.
///
/// The model owns three flat buffers of `layout.totalCount` floats: parameters, gradients
/// (allocated on the first backward pass) and nothing else; activations live in a workspace that
/// is reused between calls of the same or smaller shape. Not thread-safe: one model per thread.
public final class GPT2Model {
    public let layout: ParameterLayout
    public var config: GPT2Config { layout.config }
    let params: FloatBuffer
    var gradBuffer: FloatBuffer?
    var workspace = Workspace()
    /// LoRA adapters applied on top of the (frozen) Linear layers, see LoRA.swift.
    var lora: LoRAAdapters?
    /// Frozen Linear weights held quantized (QLoRA), see QuantizedBase.swift.
    var quantizedBase: QuantizedTensors?
    /// Activation (gradient) checkpointing: the forward pass of `forwardBackward` keeps only each
    /// block's input (the residual stream, N x C floats per block) and the backward pass runs each
    /// block's forward again before its backward. Activation memory drops from about
    /// L x (15 C + H T) floats per token to L x C + (15 C + H T), for one more forward pass of
    /// the blocks; the results are identical (the recomputation is the same arithmetic). Needs
    /// drop_rate 0 (recomputed dropout masks would differ).
    public var recomputesActivations = false {
        didSet { if recomputesActivations { precondition(config.dropRate == 0, "activation recomputation needs drop_rate 0") } }
    }

    /// Builds a model over `params` (`layout.totalCount` floats in layout order).
    public init(layout: ParameterLayout, params: [Float]) throws {
        try layout.config.validate()
        guard params.count == layout.totalCount else {
            throw PipelineError("parameter buffer has \(params.count) floats but model \(layout.config.name) needs \(layout.totalCount)")
        }
        if case .classifier(let k) = layout.head, k < 1 {
            throw PipelineError("classifier head needs at least one class, got \(k)")
        }
        _ = AllocatorTuning.applied
        self.layout = layout
        self.params = FloatBuffer(count: layout.totalCount, zeroed: false)
        params.withUnsafeBufferPointer { self.params.base.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// A model whose parameter buffer is calloc'ed and not yet filled (see
    /// `init(layout:quantized:remainder:)`).
    init(layout: ParameterLayout, unfilled: Void) throws {
        try layout.config.validate()
        _ = AllocatorTuning.applied
        self.layout = layout
        self.params = FloatBuffer(count: layout.totalCount, zeroed: true)
    }

    /// The token and position embeddings, located once per pass (see `EmbeddingRows`).
    func embeddingRows() -> EmbeddingRows {
        EmbeddingRows(wte: params.base + layout.spec(named: "wte.weight")!.offset,
                      wpe: params.base + layout.spec(named: "wpe.weight")!.offset,
                      quantizedWTE: quantizedBase?["wte.weight"], C: config.embDim)
    }

    /// A copy of the parameters (layout order).
    public var parameters: [Float] { params.array }

    /// Replaces all parameters.
    public func setParameters(_ values: [Float]) throws {
        guard values.count == layout.totalCount else {
            throw PipelineError("parameter buffer has \(values.count) floats, expected \(layout.totalCount)")
        }
        values.withUnsafeBufferPointer { params.base.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// A copy of one parameter tensor.
    public func tensor(_ name: String) -> [Float]? {
        guard let s = layout.spec(named: name) else { return nil }
        return Array(UnsafeBufferPointer(start: params.base + s.offset, count: s.count))
    }

    /// Direct access to the parameter buffer (for optimisers and checkpoint writers).
    public func withParameters<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: params.base, count: params.count))
    }

    /// A copy of the accumulated gradients (zeros before the first backward pass).
    public var gradients: [Float] { gradBuffer?.array ?? [Float](repeating: 0, count: layout.totalCount) }

    /// Gradient of one tensor.
    public func gradient(_ name: String) -> [Float]? {
        guard let s = layout.spec(named: name) else { return nil }
        guard let g = gradBuffer else { return [Float](repeating: 0, count: s.count) }
        return Array(UnsafeBufferPointer(start: g.base + s.offset, count: s.count))
    }

    /// Tensors whose gradient slots have been written since the last `zeroGradients`.
    var writtenGradients: Set<String> = []

    /// Sets all gradients to zero (call before each optimizer step's first micro-batch). Only the
    /// slots that backward passes wrote are cleared; the others are still zero.
    public func zeroGradients() {
        lora?.zeroGradients()
        guard let g = gradBuffer else { return }
        for name in writtenGradients {
            if let s = layout.spec(named: name) { (g.base + s.offset).update(repeating: 0, count: s.count) }
        }
        writtenGradients = []
    }

    func withGradients<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        let g = ensureGradients()
        return try body(UnsafeMutableBufferPointer(start: g.base, count: g.count))
    }

    func ensureGradients() -> FloatBuffer {
        if let g = gradBuffer { return g }
        let g = FloatBuffer(count: layout.totalCount)
        gradBuffer = g
        return g
    }

    // MARK: Public entry points

    /// Language-model logits for every position: [batch * seqLen * vocabSize], row-major.
    public func logits(tokens: [Int32], batch: Int, seqLen: Int) throws -> [Float] {
        guard layout.head == .languageModel else {
            throw PipelineError("logits(tokens:) needs the language-model head; a classifier runs through ClassifierModel (Classification)")
        }
        let pass = try Pass(model: self, tokens: tokens, batch: batch, seqLen: seqLen, trainable: nil, training: false, seed: 0)
        pass.forwardBlocks()
        let V = config.vocabSize
        let lg = pass.lmLogits()
        return Array(UnsafeBufferPointer(start: lg, count: batch * seqLen * V))
    }

    /// The loss without gradients and without dropout (evaluation).
    public func loss(tokens: [Int32], batch: Int, seqLen: Int, objective: Objective) throws -> Float {
        let pass = try Pass(model: self, tokens: tokens, batch: batch, seqLen: seqLen, trainable: nil, training: false, seed: 0)
        try pass.checkObjective(objective)
        pass.forwardBlocks()
        return pass.headLoss(objective, computeGradient: false, scale: 1)
    }

    /// Forward + backward: returns the loss and ADDS d(loss * gradientScale)/d(param) into the
    /// gradient buffer for every tensor in `trainable` (other gradients are left untouched).
    /// Dropout is applied when `training` is true and the config's drop_rate > 0, with masks drawn
    /// from `dropoutSeed`. Throws `TrainingError` when the loss is NaN or infinite.
    @discardableResult
    public func forwardBackward(tokens: [Int32], batch: Int, seqLen: Int, objective: Objective,
                                trainable: TrainableSet, training: Bool = true, dropoutSeed: UInt64 = 0,
                                gradientScale: Float = 1) throws -> Float {
        try trainable.validate(against: layout)
        if let q = quantizedBase, let frozen = trainable.names.sorted().first(where: { q[$0] != nil }) {
            throw PipelineError("\(frozen) is held quantized (\(q.type.rawValue)) and cannot be trained",
                                hint: "QLoRA trains LoRA adapters over a frozen quantized base; full fine-tuning needs the float32 weights")
        }
        if trainable.adapters && lora == nil {
            throw PipelineError("the trainable set names the LoRA adapters, but none are attached", hint: "call attachLoRA first")
        }
        let pass = try Pass(model: self, tokens: tokens, batch: batch, seqLen: seqLen, trainable: trainable,
                            training: training, seed: dropoutSeed)
        writtenGradients.formUnion(trainable.names)
        try pass.checkObjective(objective)
        pass.forwardBlocks()
        let loss = pass.headLoss(objective, computeGradient: true, scale: gradientScale)
        guard loss.isFinite else {
            throw TrainingError("training loss is \(loss) (not a finite number); stopping instead of corrupting the weights. Lower the learning rate or check the inputs.")
        }
        pass.backwardBlocks()
        return loss
    }
}

// MARK: - Workspace: activation buffers reused between calls

/// What a transformer block keeps past its attention, for R rows (every position, or one per
/// sequence in TrunkSelected.swift): the attention output y [R, C], resid2 = x + attn proj [R, C],
/// ln_2's output [R, C] and statistics [R], c_fc's output and its GELU [R, 4C].
class BlockTailActivations {
    final let y, resid2, ln2, ln2Mean, ln2Rstd, fc, gelu: FloatBuffer

    init(rows R: Int, C: Int) {
        y = FloatBuffer(count: R * C, zeroed: false)
        resid2 = FloatBuffer(count: R * C, zeroed: false)
        ln2 = FloatBuffer(count: R * C, zeroed: false)
        ln2Mean = FloatBuffer(count: R, zeroed: false)
        ln2Rstd = FloatBuffer(count: R, zeroed: false)
        fc = FloatBuffer(count: R * 4 * C, zeroed: false)
        gelu = FloatBuffer(count: R * 4 * C, zeroed: false)
    }
}

/// Activations of one transformer block that the backward pass needs.
final class BlockActivations: BlockTailActivations {
    let ln1, ln1Mean, ln1Rstd, qkv, att: FloatBuffer
    var attDropped: FloatBuffer?, attMask: FloatBuffer?, projMask: FloatBuffer?, mlpMask: FloatBuffer?

    init(rows N: Int, C: Int, attCount: Int) {
        ln1 = FloatBuffer(count: N * C, zeroed: false)
        ln1Mean = FloatBuffer(count: N, zeroed: false)
        ln1Rstd = FloatBuffer(count: N, zeroed: false)
        qkv = FloatBuffer(count: N * 3 * C, zeroed: false)
        att = FloatBuffer(count: attCount, zeroed: false)
        super.init(rows: N, C: C)
    }

    func ensureDropout(rows N: Int, C: Int, attCount: Int) {
        if attMask == nil {
            attDropped = FloatBuffer(count: attCount, zeroed: false)
            attMask = FloatBuffer(count: attCount, zeroed: false)
            projMask = FloatBuffer(count: N * C, zeroed: false)
            mlpMask = FloatBuffer(count: N * C, zeroed: false)
        }
    }
}

/// All buffers for a given capacity (rows = batch * seqLen, attention = batch * heads * seqLen^2).
final class Workspace {
    var rowCapacity = 0
    var attCapacity = 0
    var residual: [FloatBuffer] = []          // nLayers + 1 residual-stream snapshots [N, C]
    var stored: [BlockActivations?] = []      // per block, when the backward pass needs it
    var scratch: BlockActivations?            // shared by blocks that are run without storing
    var tmpC: FloatBuffer?                    // [N, C]
    var embMask: FloatBuffer?
    var lnf, lnfMean, lnfRstd: FloatBuffer?
    var logits: FloatBuffer?
    var dResid, dTmpC, dTmpC2, dBig, dQKV, dAtt: FloatBuffer?
    var rowLoss: FloatBuffer?

    func prepare(rows: Int, attCount: Int, config: GPT2Config) {
        if rows <= rowCapacity && attCount <= attCapacity && !residual.isEmpty { return }
        let C = config.embDim
        rowCapacity = max(rows, rowCapacity)
        attCapacity = max(attCount, attCapacity)
        let N = rowCapacity
        residual = (0...config.nLayers).map { _ in FloatBuffer(count: N * C, zeroed: false) }
        stored = Array(repeating: nil, count: config.nLayers)
        scratch = nil
        tmpC = FloatBuffer(count: N * C, zeroed: false)
        embMask = nil
        lnf = nil; lnfMean = nil; lnfRstd = nil; logits = nil
        dResid = nil; dTmpC = nil; dTmpC2 = nil; dBig = nil; dQKV = nil; dAtt = nil
        rowLoss = nil
    }

    func blockActivations(_ l: Int, store: Bool, C: Int) -> BlockActivations {
        if store {
            if let a = stored[l] { return a }
            let a = BlockActivations(rows: rowCapacity, C: C, attCount: attCapacity)
            stored[l] = a
            return a
        }
        if let s = scratch { return s }
        let s = BlockActivations(rows: rowCapacity, C: C, attCount: attCapacity)
        scratch = s
        return s
    }

    func buffer(_ b: inout FloatBuffer?, _ count: Int) -> FloatBuffer {
        if let x = b, x.count >= count { return x }
        let x = FloatBuffer(count: count, zeroed: false)
        b = x
        return x
    }
}

/// Writes a position's input row: o[0..<C] = wte[token] + wpe[position], the token row
/// dequantized when the embedding is held quantized.
struct EmbeddingRows {
    let wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>
    let quantizedWTE: QuantizedLinear?
    let C: Int

    func write(token: Int32, position: Int, into o: UnsafeMutablePointer<Float>) {
        let p = wpe + position * C
        if let q = quantizedWTE {
            q.dequantize(rows: Int(token)..<Int(token) + 1, into: o)
            for j in 0..<C { o[j] += p[j] }
        } else {
            let e = wte + Int(token) * C
            for j in 0..<C { o[j] = e[j] + p[j] }
        }
    }
}

import ArtifactKit
import COpenBLAS
import Foundation

/// LoRA (low-rank adaptation) as in appendix E of the book: every Linear layer of the model gets
/// an adapter, y = x W + b + alpha * (x A) B, with A [in, rank] and B [rank, out].
///
/// Exactly the book's `LoRALayer` / `replace_linear_with_lora`:
/// - the scaling is `alpha`, NOT alpha / rank (the book's `self.alpha * (x @ self.A @ self.B)`);
/// - A starts as `torch.nn.init.kaiming_uniform_(A, a=sqrt(5))` on an [in, rank] tensor, whose
///   fan-in is `rank`: U(-1/sqrt(rank), 1/sqrt(rank)); B starts at zero, so a fresh adapter
///   changes nothing;
/// - the book's GPTModel has separate W_query, W_key, W_value Linears, so the fused `c_attn`
///   gets three adapters (q, k, v: each [C, rank] x [rank, C] on its third of the columns);
///   c_proj, c_fc and mlp.c_proj one each; and the output head one (`out_head` of the
///   classifier, `lm_head` for the language-model head: the book's separate `out_head` Linear,
///   here tied to `wte`, which stays frozen). Embeddings and LayerNorms are not Linear layers and
///   get none. All original parameters are frozen.
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float

    public init(rank: Int, alpha: Float) {
        self.rank = rank
        self.alpha = alpha
    }

    /// A rank below 1 or a non-finite alpha is an error (the message names `location`, e.g. train.lora_rank).
    public func validate(rankLocation: String = "lora_rank", alphaLocation: String = "lora_alpha") throws {
        guard rank >= 1 else {
            throw PipelineError("LoRA rank must be at least 1, got \(rank)", location: rankLocation,
                                hint: "the book uses rank 16 (e.g. --lora-rank 16)")
        }
        guard alpha.isFinite else {
            throw PipelineError("LoRA alpha must be a finite number, got \(alpha)", location: alphaLocation,
                                hint: "the book uses alpha 16 (e.g. --lora-alpha 16)")
        }
    }
}

extension LoRASettings {
    private enum FlatKeys: String, CodingKey { case rank = "lora_rank", alpha = "lora_alpha" }

    /// The `lora_rank` and `lora_alpha` keys of a flat settings object (a trainer's params), each
    /// taken from `defaults` when absent.
    public init(flatFrom decoder: Decoder, defaults: LoRASettings) throws {
        let c = try decoder.container(keyedBy: FlatKeys.self)
        self.init(rank: try c.decodeIfPresent(Int.self, forKey: .rank) ?? defaults.rank,
                  alpha: try c.decodeIfPresent(Float.self, forKey: .alpha) ?? defaults.alpha)
    }

    /// Writes `lora_rank` and `lora_alpha` into a flat settings object (alpha as its shortest decimal).
    public func encodeFlat(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FlatKeys.self)
        try c.encode(rank, forKey: .rank)
        try c.encode(alpha.shortestDouble, forKey: .alpha)
    }
}

/// One adapter: A [inDim, rank] then B [rank, outDim] in the adapter buffer. It adds to output
/// columns `column..<column + outDim` of the base Linear `linear`.
public struct LoRAAdapterSpec: Equatable, Sendable {
    /// Tensor names are `name + ".lora_A"` and `name + ".lora_B"`.
    public var name: String
    /// The base Linear, by its weight name without ".weight": "h.0.attn.c_attn", "out_head", "lm_head".
    public var linear: String
    public var inDim: Int
    public var outDim: Int
    public var column: Int
    public var aOffset: Int
    public var block: Int?
    public var aCount: Int { inDim * rank }
    public var bOffset: Int { aOffset + aCount }
    public var rank: Int
    public var count: Int { (inDim + outDim) * rank }
}

/// The adapters of a model in one flat buffer, in a stable order: for each block i
/// `h.i.attn.c_attn.{q,k,v}`, `h.i.attn.c_proj`, `h.i.mlp.c_fc`, `h.i.mlp.c_proj`, then the head
/// (`out_head` or `lm_head`); each adapter's A then B.
public struct LoRALayout: Equatable, Sendable {
    public let rank: Int
    public let adapters: [LoRAAdapterSpec]
    public let totalCount: Int
    private let byLinear: [String: [Int]]

    public init(layout: ParameterLayout, rank: Int) throws {
        try LoRASettings(rank: rank, alpha: 1).validate()
        self.rank = rank
        let C = layout.config.embDim
        var specs: [LoRAAdapterSpec] = []
        var offset = 0
        func add(_ name: String, linear: String, _ inDim: Int, _ outDim: Int, column: Int = 0, block: Int?) {
            specs.append(LoRAAdapterSpec(name: name, linear: linear, inDim: inDim, outDim: outDim, column: column,
                                         aOffset: offset, block: block, rank: rank))
            offset += (inDim + outDim) * rank
        }
        for i in 0..<layout.config.nLayers {
            let p = "h.\(i)."
            for (j, part) in ["q", "k", "v"].enumerated() {
                add(p + "attn.c_attn." + part, linear: p + "attn.c_attn", C, C, column: j * C, block: i)
            }
            add(p + "attn.c_proj", linear: p + "attn.c_proj", C, C, block: i)
            add(p + "mlp.c_fc", linear: p + "mlp.c_fc", C, 4 * C, block: i)
            add(p + "mlp.c_proj", linear: p + "mlp.c_proj", 4 * C, C, block: i)
        }
        switch layout.head {
        case .classifier(let k): add("out_head", linear: "out_head", C, k, block: nil)
        case .languageModel: add("lm_head", linear: "lm_head", C, layout.config.vocabSize, block: nil)
        }
        adapters = specs
        totalCount = offset
        var index: [String: [Int]] = [:]
        for (i, s) in specs.enumerated() { index[s.linear, default: []].append(i) }
        byLinear = index
    }

    /// The adapters adding to one base Linear (three for c_attn, one otherwise, none if unknown).
    public func adapters(of linear: String) -> [LoRAAdapterSpec] { (byLinear[linear] ?? []).map { adapters[$0] } }

    /// Every tensor with its name, shape and offset, in buffer order (A before B).
    public var tensors: [(name: String, shape: [Int], offset: Int)] {
        adapters.flatMap { s in
            [(s.name + ".lora_A", [s.inDim, rank], s.aOffset), (s.name + ".lora_B", [rank, s.outDim], s.bOffset)]
        }
    }

    /// The book's initialisation: A ~ U(-1/sqrt(rank), 1/sqrt(rank)) (kaiming_uniform_ with
    /// a = sqrt(5) on [in, rank]), B = 0. Drawn from `seed` (not torch's generator: the same
    /// distribution, different numbers).
    public func initialValues(seed: UInt64) -> [Float] {
        var values = [Float](repeating: 0, count: totalCount)
        var rng = SeededGenerator(seed: seed ^ 0x10A4_AD47_E125_0000)
        let bound = 1 / Float(rank).squareRoot()
        for s in adapters {
            for i in s.aOffset..<s.bOffset { values[i] = (2 * rng.nextUnitFloat() - 1) * bound }
        }
        return values
    }
}

/// Adapter values with their settings: what a checkpoint stores and `GPT2Model.attachLoRA` takes.
public struct LoRAWeights: Equatable, Sendable {
    public var settings: LoRASettings
    public var layout: LoRALayout
    public var values: [Float]

    public init(settings: LoRASettings, layout: LoRALayout, values: [Float]) throws {
        try settings.validate()
        guard layout.rank == settings.rank else {
            throw PipelineError("LoRA layout has rank \(layout.rank) but the settings say \(settings.rank)")
        }
        guard values.count == layout.totalCount else {
            throw PipelineError("LoRA adapters have \(values.count) floats, rank \(layout.rank) needs \(layout.totalCount)")
        }
        self.settings = settings
        self.layout = layout
        self.values = values
    }

    /// Fresh adapters for `model` with the book's initialisation (B = 0: the model is unchanged).
    public static func initial(for layout: ParameterLayout, settings: LoRASettings, seed: UInt64) throws -> LoRAWeights {
        try settings.validate()
        let l = try LoRALayout(layout: layout, rank: settings.rank)
        return try LoRAWeights(settings: settings, layout: l, values: l.initialValues(seed: seed))
    }

    /// W' = W + alpha * A B folded into a copy of `params` (Conv1D weights [in, out] at the
    /// adapter's columns; `out_head.weight` is [out, in], so the product goes in transposed).
    /// The merged model computes the same function up to float rounding (tested). The tied
    /// `lm_head` cannot be merged: `wte` is also the input embedding; with `skippingTiedHead`
    /// its adapter is left out (see `tiedHeadDelta` for an untied head), otherwise it is an error.
    public func merged(into params: [Float], layout: ParameterLayout, skippingTiedHead: Bool = false) throws -> [Float] {
        guard params.count == layout.totalCount else {
            throw PipelineError("cannot merge LoRA: \(params.count) parameters for a layout of \(layout.totalCount)")
        }
        var out = params
        let r = settings.rank
        for s in self.layout.adapters {
            if skippingTiedHead && s.linear == "lm_head" { continue }
            guard s.linear != "lm_head", let w = layout.spec(named: s.linear + ".weight") else {
                throw PipelineError("cannot merge the LoRA adapter \(s.name) into the weights (the language-model head is tied to wte)",
                                    hint: "apply the adapters at run time with GPT2Model.attachLoRA")
            }
            // delta [in, out] = alpha * A B
            var delta = [Float](repeating: 0, count: s.inDim * s.outDim)
            values.withUnsafeBufferPointer { v in
                sgemm(M: s.inDim, N: s.outDim, K: r, alpha: settings.alpha, A: v.baseAddress! + s.aOffset, lda: r,
                      B: v.baseAddress! + s.bOffset, ldb: s.outDim, beta: 0, C: &delta, ldc: s.outDim)
            }
            if s.linear == "out_head" {
                let inDim = s.inDim
                for i in 0..<inDim { for o in 0..<s.outDim { out[w.offset + o * inDim + i] += delta[i * s.outDim + o] } }
            } else {
                let width = w.shape[1]
                for i in 0..<s.inDim {
                    for o in 0..<s.outDim { out[w.offset + i * width + s.column + o] += delta[i * s.outDim + o] }
                }
            }
        }
        return out
    }
}

extension LoRAWeights {
    /// The tied language-model head's adapter as a change of the output matrix: alpha (A B)^T,
    /// [vocab, C] like `wte` (logits = h wte^T + alpha (h A) B), or nil when there is no such
    /// adapter or its B is all zero (the head is then exactly `wte`).
    public func tiedHeadDelta() -> [Float]? {
        guard let s = layout.adapters(of: "lm_head").first,
              values[s.bOffset..<(s.bOffset + s.rank * s.outDim)].contains(where: { $0 != 0 }) else { return nil }
        var delta = [Float](repeating: 0, count: s.outDim * s.inDim)
        // delta [out, in] = alpha * B^T A^T
        values.withUnsafeBufferPointer { v in
            sgemm(transA: true, transB: true, M: s.outDim, N: s.inDim, K: s.rank, alpha: settings.alpha,
                  A: v.baseAddress! + s.bOffset, lda: s.outDim, B: v.baseAddress! + s.aOffset, ldb: s.rank,
                  beta: 0, C: &delta, ldc: s.inDim)
        }
        return delta
    }
}

/// The adapters attached to a `GPT2Model`: values, gradients (allocated on the first backward
/// pass) and a small scratch buffer for x A.
public final class LoRAAdapters {
    public let settings: LoRASettings
    public let layout: LoRALayout
    let params: FloatBuffer
    var gradBuffer: FloatBuffer?
    private var scratch = FloatBuffer(count: 0)

    init(_ weights: LoRAWeights) {
        settings = weights.settings
        layout = weights.layout
        params = FloatBuffer(count: weights.layout.totalCount, zeroed: false)
        weights.values.withUnsafeBufferPointer { params.base.update(from: $0.baseAddress!, count: $0.count) }
    }

    public var count: Int { layout.totalCount }
    public var alpha: Float { settings.alpha }
    /// A copy of the adapter values (layout order).
    public var values: [Float] { params.array }
    /// A copy of the accumulated adapter gradients.
    public var gradients: [Float] { gradBuffer?.array ?? [Float](repeating: 0, count: count) }
    public var weights: LoRAWeights { try! LoRAWeights(settings: settings, layout: layout, values: values) }

    public func setValues(_ v: [Float]) throws {
        guard v.count == count else { throw PipelineError("LoRA adapters have \(count) floats, got \(v.count)") }
        v.withUnsafeBufferPointer { params.base.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// Copies `values[range]` (offsets in the adapter buffer) into the adapters.
    public func setValues(_ v: UnsafeBufferPointer<Float>, range: Range<Int>) {
        (params.base + range.lowerBound).update(from: v.baseAddress!, count: range.count)
    }

    func ensureGradients() -> FloatBuffer {
        if let g = gradBuffer { return g }
        let g = FloatBuffer(count: count)
        gradBuffer = g
        return g
    }

    public func zeroGradients() { gradBuffer?.zero() }

    private func scratch(_ n: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < n { scratch = FloatBuffer(count: n, zeroed: false) }
        return scratch.base
    }

    /// out[:, column..<column+outDim] += alpha * (x A) B for every adapter of `linear`; `out` has
    /// `ldOut` floats per row (the base Linear's full width).
    func forward(_ linear: String, x: UnsafePointer<Float>, rows: Int, ldOut: Int, out: UnsafeMutablePointer<Float>) {
        let r = layout.rank
        for s in layout.adapters(of: linear) {
            let u = scratch(rows * r)
            parallelSgemm(M: rows, N: r, K: s.inDim, A: x, lda: s.inDim, B: params.base + s.aOffset, ldb: r, beta: 0, C: u, ldc: r)
            parallelSgemm(M: rows, N: s.outDim, K: r, alpha: alpha, A: u, lda: r, B: params.base + s.bOffset, ldb: s.outDim,
                          beta: 1, C: out + s.column, ldc: ldOut)
        }
    }

    /// Backward of `forward` for the adapters of `linear`, given dY [rows, ldOut] and the input x:
    /// dB += alpha (x A)^T dY, dA += x^T (alpha dY B^T) when `train`, and dX += alpha dY B^T A^T.
    func backward(_ linear: String, dY: UnsafePointer<Float>, ldY: Int, x: UnsafePointer<Float>, rows: Int,
                  dX: UnsafeMutablePointer<Float>?, train: Bool) {
        let r = layout.rank
        let G = train ? ensureGradients().base : nil
        for s in layout.adapters(of: linear) {
            guard G != nil || dX != nil else { continue }
            let u = scratch(2 * rows * r), du = u + rows * r
            let dYs = dY + s.column
            if let G {
                parallelSgemm(M: rows, N: r, K: s.inDim, A: x, lda: s.inDim, B: params.base + s.aOffset, ldb: r, beta: 0, C: u, ldc: r)
                parallelSgemm(transA: true, M: r, N: s.outDim, K: rows, alpha: alpha, A: u, lda: r, B: dYs, ldb: ldY,
                              beta: 1, C: G + s.bOffset, ldc: s.outDim)
            }
            parallelSgemm(transB: true, M: rows, N: r, K: s.outDim, alpha: alpha, A: dYs, lda: ldY, B: params.base + s.bOffset,
                          ldb: s.outDim, beta: 0, C: du, ldc: r)
            if let G {
                parallelSgemm(transA: true, M: s.inDim, N: r, K: rows, A: x, lda: s.inDim, B: du, ldb: r, beta: 1,
                              C: G + s.aOffset, ldc: r)
            }
            if let dX {
                parallelSgemm(transB: true, M: rows, N: s.inDim, K: r, A: du, lda: r, B: params.base + s.aOffset, ldb: r,
                              beta: 1, C: dX, ldc: s.inDim)
            }
        }
    }
}

extension GPT2Model {
    /// Attaches adapters (replacing any): from now on every forward pass, loss, `logits` and
    /// `generate` applies them, and `forwardBackward` with `TrainableSet.loraAdapters` trains them.
    public func attachLoRA(_ weights: LoRAWeights) throws {
        let expected = try LoRALayout(layout: layout, rank: weights.settings.rank)
        guard expected == weights.layout else {
            throw PipelineError("the LoRA adapters were made for another model (\(weights.layout.totalCount) floats, this model's rank-\(weights.settings.rank) adapters need \(expected.totalCount))")
        }
        lora = LoRAAdapters(weights)
    }

    public func detachLoRA() { lora = nil }

    /// The attached adapters, if any.
    public var loraAdapters: LoRAAdapters? { lora }
}

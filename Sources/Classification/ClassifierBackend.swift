import ArtifactKit
import GPT2

/// What goes into the upper part of the transformer: token ids (the embeddings run first) or the
/// hidden states entering the first block that runs.
public enum TrunkInput {
    case tokens([Int32])
    case hidden([Float])
}

/// The GPT-2 transformer without its output head, split at a block boundary so that frozen lower
/// blocks can run once (no activations kept) and only the trainable upper blocks run forward and
/// backward every step. Parameters are the flat buffer of `ParameterLayout`; gradients use the
/// same offsets. All tensors are row-major [batch, length, embDim].
///
/// The head, the pooling of positions, the loss and the optimizer live in this module
/// (`ClassifierModel`, `AdamW`); the backend only does the transformer.
public protocol ClassifierBackend: AnyObject {
    var layout: ParameterLayout { get }

    /// Takes `values[range]` as the new parameters there (all of them at first, then the trained
    /// range after every optimizer step); both count from `vectorStart`.
    func loadParameters(_ values: [Float], range: Range<Int>)

    /// Token + position embeddings, then blocks `0..<endBlock` (no activations kept).
    /// Returns the hidden states entering block `endBlock`.
    func hiddenStates(tokens: [Int32], batch: Int, length: Int, endBlock: Int) throws -> [Float]

    /// Blocks `startBlock..<nLayers` and the final LayerNorm. With `.tokens`, `startBlock` must be 0
    /// and the embeddings run first. With `keepActivations`, what `backwardTop` needs is kept.
    /// Returns the normalised final hidden states [batch, length, embDim].
    func forwardTop(_ input: TrunkInput, batch: Int, length: Int, startBlock: Int, keepActivations: Bool) throws -> [Float]

    /// Backpropagates `dOutput` (gradient of the loss w.r.t. the last `forwardTop` output) and
    /// ADDS the parameter gradients of the final LayerNorm, blocks `startBlock...` and (for
    /// `.tokens` input) the embeddings into `gradients`.
    func backwardTop(dOutput: [Float], gradients: inout [Float]) throws

    /// Optional shortcut: the last block and the final LayerNorm evaluated only at `positions[b]`
    /// of each row, from the hidden states entering the last block: [batch, embDim], or nil when
    /// the backend cannot. With `keepActivations`, `backwardTop` then takes a [batch, embDim] gradient.
    func forwardLastBlockSelected(hidden: [Float], batch: Int, length: Int, positions: [Int],
                                  keepActivations: Bool) throws -> [Float]?

    /// LoRA: attaches adapters to every Linear layer. From then on the parameter vector the
    /// backend takes (`loadParameters`) and returns gradients for (`backwardTop`) is the base
    /// parameters followed by the adapters, and only the adapters get gradients.
    func attachLoRA(_ weights: LoRAWeights) throws

    /// The attached adapters, if any.
    var loraAdapters: LoRAAdapters? { get }

    /// Where the classifier's own parameter vector starts in the full one (base parameters in
    /// layout order, then the adapters): the `values`, `range` of `loadParameters` and the
    /// `gradients` of `backwardTop` are indexed from here. The parameters below live only in the
    /// backend, which never needs them from outside: 0, except over a QLoRA base (`GPT2Backend.init(qloraModel:)`).
    var vectorStart: Int { get }

    /// A tensor below `vectorStart` as float32 (a quantized one dequantized), for the checkpoint.
    func frozenBaseTensor(_ spec: TensorSpec) -> [Float]?
}

extension ClassifierBackend {
    public func attachLoRA(_ weights: LoRAWeights) throws {
        throw PipelineError("this classifier backend does not support LoRA")
    }

    public var loraAdapters: LoRAAdapters? { nil }

    public var vectorStart: Int { 0 }

    public func frozenBaseTensor(_ spec: TensorSpec) -> [Float]? { nil }

    public func forwardLastBlockSelected(hidden: [Float], batch: Int, length: Int, positions: [Int],
                                         keepActivations: Bool) throws -> [Float]? { nil }
}

/// The real backend: OpenBLAS GPT-2 (`GPT2Model`) split by `GPT2Trunk`.
public final class GPT2Backend: ClassifierBackend {
    public let model: GPT2Model
    let trunk: GPT2Trunk

    public let vectorStart: Int

    public init(layout: ParameterLayout, parameters: [Float]) throws {
        model = try GPT2Model(layout: layout, params: parameters)
        trunk = try GPT2Trunk(model: model)
        vectorStart = 0
    }

    /// QLoRA: the backend over `model`, whose base is quantized (`attachQuantizedBase`) and which
    /// alone holds it. The classifier's vector starts at the classification head (`out_head`,
    /// the layout's last tensors, K x C float32), so it holds the head and the adapters and never
    /// a float32 copy of the base; the trunk reads the quantized weights.
    public init(qloraModel model: GPT2Model) throws {
        guard model.quantizedBaseWeights != nil, let head = model.layout.spec(named: "out_head.weight") else {
            throw PipelineError("a QLoRA classifier backend needs a model with a quantized base and a classification head")
        }
        self.model = model
        trunk = try GPT2Trunk(model: model)
        vectorStart = head.offset
    }

    public var layout: ParameterLayout { model.layout }

    public func attachLoRA(_ weights: LoRAWeights) throws { try model.attachLoRA(weights) }

    public var loraAdapters: LoRAAdapters? { model.loraAdapters }

    public func frozenBaseTensor(_ spec: TensorSpec) -> [Float]? { model.tensorWithDequantizedBase(spec) }

    public func loadParameters(_ values: [Float], range: Range<Int>) {
        trunk.loadParameters(values, range: (range.lowerBound + vectorStart)..<(range.upperBound + vectorStart), vectorStart: vectorStart)
    }

    public func hiddenStates(tokens: [Int32], batch: Int, length: Int, endBlock: Int) throws -> [Float] {
        try trunk.hiddenStates(tokens: tokens, batch: batch, seqLen: length, endBlock: endBlock)
    }

    public func forwardTop(_ input: TrunkInput, batch: Int, length: Int, startBlock: Int, keepActivations: Bool) throws -> [Float] {
        switch input {
        case .tokens(let t):
            return try trunk.forwardTop(tokens: t, hidden: nil, batch: batch, seqLen: length, startBlock: startBlock,
                                        keepActivations: keepActivations)
        case .hidden(let h):
            return try trunk.forwardTop(tokens: nil, hidden: h, batch: batch, seqLen: length, startBlock: startBlock,
                                        keepActivations: keepActivations)
        }
    }

    public func forwardLastBlockSelected(hidden: [Float], batch: Int, length: Int, positions: [Int],
                                         keepActivations: Bool) throws -> [Float]? {
        try trunk.forwardLastBlockSelected(hidden: hidden, batch: batch, seqLen: length, positions: positions,
                                           keepActivations: keepActivations)
    }

    public func backwardTop(dOutput: [Float], gradients: inout [Float]) throws {
        try gradients.withUnsafeMutableBufferPointer { g in try trunk.backwardTop(dOutput: dOutput, addingInto: g, vectorStart: vectorStart) }
    }
}

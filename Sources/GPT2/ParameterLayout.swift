import ArtifactKit
import Foundation

/// Which output head sits on top of the transformer.
public enum ModelHead: Codable, Equatable, Sendable {
    /// The language-model head, tied to `wte` (no parameters of its own).
    case languageModel
    /// The book's classification head: Linear(emb_dim, numClasses) with bias, named `out_head.*`.
    case classifier(numClasses: Int)
}

/// One tensor inside the flat parameter buffer.
public struct TensorSpec: Equatable, Sendable {
    /// Hugging Face name (as in openai-community/gpt2's model.safetensors, no `transformer.` prefix).
    public var name: String
    /// Shape as stored by Hugging Face: Conv1D weights are [in, out]; `out_head.weight` is [out, in].
    public var shape: [Int]
    /// Offset in floats from the start of the flat buffer.
    public var offset: Int
    /// The transformer block the tensor belongs to, or nil for embeddings, final norm and head.
    public var block: Int?

    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// All parameters of a model in one flat Float buffer, in a stable order (llm.c style), so that
/// gradients and AdamW moments are buffers of the same layout and "the last block + final norm +
/// head" is one contiguous suffix:
///
///   wte.weight [V, C], wpe.weight [T, C],
///   for each block i: h.i.ln_1.weight [C], h.i.ln_1.bias [C],
///                     h.i.attn.c_attn.weight [C, 3C], h.i.attn.c_attn.bias [3C] (only if qkv_bias),
///                     h.i.attn.c_proj.weight [C, C], h.i.attn.c_proj.bias [C],
///                     h.i.ln_2.weight [C], h.i.ln_2.bias [C],
///                     h.i.mlp.c_fc.weight [C, 4C], h.i.mlp.c_fc.bias [4C],
///                     h.i.mlp.c_proj.weight [4C, C], h.i.mlp.c_proj.bias [C],
///   ln_f.weight [C], ln_f.bias [C],
///   out_head.weight [K, C], out_head.bias [K]   (classifier head only)
///
/// The c_attn output columns are q | k | v, each split into heads of `headDim` consecutive columns.
public struct ParameterLayout: Equatable, Sendable {
    public let config: GPT2Config
    public let head: ModelHead
    public let tensors: [TensorSpec]
    public let totalCount: Int
    private let indexByName: [String: Int]

    public init(config: GPT2Config, head: ModelHead) {
        self.config = config
        self.head = head
        let C = config.embDim
        var specs: [TensorSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], _ block: Int?) {
            let spec = TensorSpec(name: name, shape: shape, offset: offset, block: block)
            specs.append(spec)
            offset += spec.count
        }
        add("wte.weight", [config.vocabSize, C], nil)
        add("wpe.weight", [config.contextLength, C], nil)
        for i in 0..<config.nLayers {
            let p = "h.\(i)."
            add(p + "ln_1.weight", [C], i)
            add(p + "ln_1.bias", [C], i)
            add(p + "attn.c_attn.weight", [C, 3 * C], i)
            if config.qkvBias { add(p + "attn.c_attn.bias", [3 * C], i) }
            add(p + "attn.c_proj.weight", [C, C], i)
            add(p + "attn.c_proj.bias", [C], i)
            add(p + "ln_2.weight", [C], i)
            add(p + "ln_2.bias", [C], i)
            add(p + "mlp.c_fc.weight", [C, 4 * C], i)
            add(p + "mlp.c_fc.bias", [4 * C], i)
            add(p + "mlp.c_proj.weight", [4 * C, C], i)
            add(p + "mlp.c_proj.bias", [C], i)
        }
        add("ln_f.weight", [C], nil)
        add("ln_f.bias", [C], nil)
        if case .classifier(let k) = head {
            add("out_head.weight", [k, C], nil)
            add("out_head.bias", [k], nil)
        }
        self.tensors = specs
        self.totalCount = offset
        self.indexByName = Dictionary(uniqueKeysWithValues: specs.enumerated().map { ($1.name, $0) })
    }

    public func spec(named name: String) -> TensorSpec? {
        indexByName[name].map { tensors[$0] }
    }

    /// The tensors of block `i`, which are contiguous in the buffer.
    public func blockRange(_ i: Int) -> Range<Int> {
        let inBlock = tensors.filter { $0.block == i }
        return inBlock.first!.offset..<(inBlock.last!.offset + inBlock.last!.count)
    }
}

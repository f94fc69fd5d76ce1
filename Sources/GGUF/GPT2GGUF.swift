import ArtifactKit
import Foundation
import GPT2

/// Our GPT-2 as llama.cpp's `gpt2` architecture (llama.cpp src/models/gpt2.cpp lists the
/// tensors it loads; every one is required except `output.weight`, which falls back to
/// `token_embd.weight`, the tied head):
///
/// | GGUF tensor                 | ggml dims   | ours (Hugging Face name, shape)          |
/// |-----------------------------|-------------|------------------------------------------|
/// | token_embd.weight           | [C, V]      | wte.weight [V, C]                         |
/// | position_embd.weight        | [C, T]      | wpe.weight [T, C]                         |
/// | blk.i.attn_norm.{weight,bias} | [C]       | h.i.ln_1.*                                |
/// | blk.i.attn_qkv.weight       | [C, 3C]     | h.i.attn.c_attn.weight [C, 3C], transposed |
/// | blk.i.attn_qkv.bias         | [3C]        | h.i.attn.c_attn.bias (zeros without qkv_bias: llama.cpp requires it) |
/// | blk.i.attn_output.{weight,bias} | [C, C]  | h.i.attn.c_proj.*, weight transposed     |
/// | blk.i.ffn_norm.{weight,bias} | [C]        | h.i.ln_2.*                                |
/// | blk.i.ffn_up.{weight,bias}  | [C, 4C]     | h.i.mlp.c_fc.*, weight transposed        |
/// | blk.i.ffn_down.{weight,bias} | [4C, C]    | h.i.mlp.c_proj.*, weight transposed      |
/// | output_norm.{weight,bias}   | [C]         | ln_f.*                                    |
/// | output.weight (only when untied) | [C, V] | wte + the merged lm_head LoRA delta       |
///
/// Our Conv1D weights are [in, out] (y = x W); a ggml matrix with dims [in, out] is out rows
/// of in values, i.e. W transposed, which is what llama.cpp's converter produces from Hugging
/// Face's Conv1D weights too. Both models use the tanh GELU and LayerNorm with eps 1e-5, and
/// q | k | v in that order, each split into heads of C / n_heads consecutive columns.
public enum GPT2GGUF {
    /// Tensors and metadata of `params` (a language model; LoRA already merged) for `type`.
    /// `untiedHead`, when given, is the output matrix [V, C] that replaces the tied `wte`.
    public static func writer(layout: ParameterLayout, params: [Float], untiedHead: [Float]?, type: GGUFType,
                              vocabulary: GGUFVocabulary, name: String, chatTemplate: String? = nil) -> GGUFWriter {
        var w = GGUFWriter()
        for (k, v) in modelMetadata(layout.config, type: type, name: name) { w.set(k, v) }
        for (k, v) in vocabulary.metadata { w.set(k, v) }
        if let chatTemplate { w.set("tokenizer.chat_template", .string(chatTemplate)) }
        for t in tensors(layout: layout, params: params, untiedHead: untiedHead, type: type) { w.add(t) }
        return w
    }

    /// general.* and gpt2.* keys (the hyperparameters llama.cpp reads for `gpt2`).
    static func modelMetadata(_ c: GPT2Config, type: GGUFType, name: String) -> [(String, GGUFValue)] {
        [
            ("general.architecture", .string("gpt2")),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(type.fileType)),
            ("general.quantization_version", .uint32(2)),
            ("general.alignment", .uint32(UInt32(GGUFFormat.defaultAlignment))),
            ("gpt2.context_length", .uint32(UInt32(c.contextLength))),
            ("gpt2.embedding_length", .uint32(UInt32(c.embDim))),
            ("gpt2.feed_forward_length", .uint32(UInt32(4 * c.embDim))),
            ("gpt2.block_count", .uint32(UInt32(c.nLayers))),
            ("gpt2.attention.head_count", .uint32(UInt32(c.nHeads))),
            ("gpt2.attention.layer_norm_epsilon", .float32(1e-5)),
        ]
    }

    /// The type a tensor is stored as: llama.cpp's converter keeps 1-D tensors (norms, biases)
    /// and the position table in F32, and falls back to F16 when a Q8_0 row length is not a
    /// multiple of 32.
    public static func storageType(name: String, dims: [Int], requested: GGUFType) -> GGMLType {
        if dims.count == 1 || name.hasSuffix("_norm.weight") || name == "position_embd.weight" { return .f32 }
        let t = requested.matrixType
        return dims[0] % t.blockSize == 0 ? t : .f16
    }

    /// All tensors in llama.cpp's order (the Hugging Face state-dict order).
    static func tensors(layout: ParameterLayout, params: [Float], untiedHead: [Float]?, type: GGUFType) -> [GGUFTensor] {
        let c = layout.config
        let C = c.embDim
        // Each tensor's values are cut out of `params` (and transposed) only when it is written.
        func values(_ name: String) -> () -> [Float] {
            let range = layout.spec(named: name)!.range
            return { Array(params[range]) }
        }
        func make(_ name: String, _ dims: [Int], _ v: @escaping () -> [Float]) -> GGUFTensor {
            GGUFTensor(name: name, dims: dims, type: storageType(name: name, dims: dims, requested: type), values: v)
        }
        /// A Conv1D weight [in, out] as ggml dims [in, out] (out rows of in values).
        func linear(_ name: String, _ ours: String, inDim: Int, outDim: Int) -> GGUFTensor {
            let w = values(ours)
            return make(name, [inDim, outDim], { transposed(w(), rows: inDim, cols: outDim) })
        }
        var out = [make("token_embd.weight", [C, c.vocabSize], values("wte.weight")),
                   make("position_embd.weight", [C, c.contextLength], values("wpe.weight"))]
        for i in 0..<c.nLayers {
            let h = "h.\(i).", b = "blk.\(i)."
            out.append(make(b + "attn_norm.weight", [C], values(h + "ln_1.weight")))
            out.append(make(b + "attn_norm.bias", [C], values(h + "ln_1.bias")))
            out.append(linear(b + "attn_qkv.weight", h + "attn.c_attn.weight", inDim: C, outDim: 3 * C))
            out.append(make(b + "attn_qkv.bias", [3 * C], c.qkvBias ? values(h + "attn.c_attn.bias") : { [Float](repeating: 0, count: 3 * C) }))
            out.append(linear(b + "attn_output.weight", h + "attn.c_proj.weight", inDim: C, outDim: C))
            out.append(make(b + "attn_output.bias", [C], values(h + "attn.c_proj.bias")))
            out.append(make(b + "ffn_norm.weight", [C], values(h + "ln_2.weight")))
            out.append(make(b + "ffn_norm.bias", [C], values(h + "ln_2.bias")))
            out.append(linear(b + "ffn_up.weight", h + "mlp.c_fc.weight", inDim: C, outDim: 4 * C))
            out.append(make(b + "ffn_up.bias", [4 * C], values(h + "mlp.c_fc.bias")))
            out.append(linear(b + "ffn_down.weight", h + "mlp.c_proj.weight", inDim: 4 * C, outDim: C))
            out.append(make(b + "ffn_down.bias", [C], values(h + "mlp.c_proj.bias")))
        }
        out.append(make("output_norm.weight", [C], values("ln_f.weight")))
        out.append(make("output_norm.bias", [C], values("ln_f.bias")))
        if let untiedHead { out.append(make("output.weight", [C, c.vocabSize], { untiedHead })) }
        return out
    }

    /// A row-major [rows, cols] matrix as row-major [cols, rows].
    static func transposed(_ m: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: m.count)
        for r in 0..<rows { for k in 0..<cols { t[k * rows + r] = m[r * cols + k] } }
        return t
    }
}

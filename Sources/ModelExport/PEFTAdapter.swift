import ArtifactKit
import Foundation
import GPT2

/// Our LoRA adapters as a PEFT LoRA adapter folder for GPT-2 (`adapter_config.json` +
/// `adapter_model.safetensors`).
///
/// Ours (GPT2/LoRA.swift): a Linear's output gains alpha (x A) B, A [in, r], B [r, out], on
/// c_attn once per q, k and v (each on its third of the columns), on attn.c_proj, mlp.c_fc,
/// mlp.c_proj and the head (the LM head, or the classifier's out_head = transformers' `score`).
/// PEFT's LoRA on a layer adds scaling * lora_B(lora_A(x)) with
/// lora_A.weight [r, in], lora_B.weight [out, r] (nn.Linear layout) and scaling =
/// lora_alpha / r. So:
/// - lora_A = A^T, lora_B = B^T, and lora_alpha = alpha * r gives PEFT's scaling = our alpha
///   (the book scales by alpha, not alpha / r);
/// - c_attn's three adapters are one of rank 3r: lora_A stacks A_q^T, A_k^T, A_v^T and lora_B is
///   block-diagonal (B_q^T in rows 0..<C, columns 0..<r, and so on), which adds exactly the three
///   products; `rank_pattern` / `alpha_pattern` give c_attn rank 3r and alpha alpha * 3r;
/// - GPT-2's c_attn / c_proj / c_fc are transformers' Conv1D (weight [in, out]), hence
///   `fan_in_fan_out: true`; the head is an nn.Linear, for which PEFT switches it off itself
///   (it comes last among the modules, after every Conv1D has taken the setting).
/// Keys are PEFT's saved names: `base_model.model.<module>.lora_{A,B}.weight`.
enum PEFTAdapter {
    static let modelFile = "adapter_model.safetensors"
    static let configFile = "adapter_config.json"

    /// The adapter tensors of a language model's LoRA weights.
    static func tensors(_ lora: LoRAWeights) -> [NamedTensor] {
        var out: [NamedTensor] = []
        let r = lora.settings.rank
        var attention: [String: [LoRAAdapterSpec]] = [:]
        for s in lora.layout.adapters {
            if s.linear.hasSuffix(".attn.c_attn") { attention[s.linear, default: []].append(s); continue }
            out += pair(module(s.linear), a: transposed(lora.values, at: s.aOffset, rows: s.inDim, columns: r),
                        b: transposed(lora.values, at: s.bOffset, rows: r, columns: s.outDim), inDim: s.inDim, outDim: s.outDim, rank: r)
        }
        for (linear, parts) in attention.sorted(by: { $0.key < $1.key }) {
            out += fusedAttention(linear, parts.sorted { $0.column < $1.column }, lora.values, rank: r)
        }
        return out.sorted { $0.name < $1.name }
    }

    /// c_attn's q, k, v adapters as one adapter of rank 3r (see the type's comment).
    static func fusedAttention(_ linear: String, _ parts: [LoRAAdapterSpec], _ values: [Float], rank r: Int) -> [NamedTensor] {
        let inDim = parts[0].inDim, width = parts.map(\.outDim).reduce(0, +), rank = r * parts.count
        var a = [Float](), b = [Float](repeating: 0, count: width * rank)
        for (j, s) in parts.enumerated() {
            a += transposed(values, at: s.aOffset, rows: inDim, columns: r)
            let bt = transposed(values, at: s.bOffset, rows: r, columns: s.outDim)   // [outDim, r]
            for o in 0..<s.outDim { for k in 0..<r { b[(s.column + o) * rank + j * r + k] = bt[o * r + k] } }
        }
        return pair(module(linear), a: a, b: b, inDim: inDim, outDim: width, rank: rank)
    }

    static func pair(_ module: String, a: [Float], b: [Float], inDim: Int, outDim: Int, rank: Int) -> [NamedTensor] {
        [("base_model.model.\(module).lora_A.weight", [rank, inDim], a), ("base_model.model.\(module).lora_B.weight", [outDim, rank], b)]
    }

    /// transformers' module path of one of our Linears (the classifier's head is `score`).
    static func module(_ linear: String) -> String {
        switch linear {
        case "lm_head": return "lm_head"
        case "out_head": return "score"
        default: return "transformer." + linear
        }
    }

    /// The [columns, rows] transpose of the [rows, columns] block at `offset`.
    static func transposed(_ v: [Float], at offset: Int, rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        for i in 0..<rows { for j in 0..<columns { out[j * rows + i] = v[offset + i * columns + j] } }
        return out
    }

    /// adapter_config.json for `lora` over the base folder `basePath`. A classifier's adapter
    /// has no task type: PEFT's SEQ_CLS task would add `score` to modules_to_save, and here
    /// `score` is adapted instead (load it with PeftModel.from_pretrained).
    static func config(_ lora: LoRAWeights, basePath: String, classifier: Bool) -> JSONValue {
        let r = lora.settings.rank, alpha = Double(lora.settings.alpha.shortestDouble)
        let targets = Set(lora.layout.adapters.map { module($0.linear).split(separator: ".").suffix(1).joined() }).sorted()
        return [
            "peft_type": "LORA", "task_type": classifier ? .null : "CAUSAL_LM", "base_model_name_or_path": .string(basePath),
            "r": .int(r), "lora_alpha": .double(alpha * Double(r)), "lora_dropout": .double(0),
            "target_modules": .array(targets.map { .string($0) }), "fan_in_fan_out": true, "bias": "none",
            "rank_pattern": ["c_attn": .int(3 * r)], "alpha_pattern": ["c_attn": .double(alpha * Double(3 * r))],
            "use_rslora": false, "use_dora": false, "modules_to_save": .null, "init_lora_weights": true,
            "inference_mode": true, "layers_to_transform": .null, "layers_pattern": .null,
        ]
    }
}

import ArtifactKit
import Foundation
import GPT2

/// One tensor of an exported safetensors file.
typealias NamedTensor = (name: String, shape: [Int], values: [Float])

/// Our parameters under transformers' names. ParameterLayout already uses GPT-2's Hugging Face
/// names and shapes (Conv1D weights [in, out]); GPT2LMHeadModel and
/// GPT2ForSequenceClassification keep the transformer under `transformer.`, the tied LM head is
/// not stored (save_pretrained leaves it out), an untied one is `lm_head.weight` [V, C], and
/// the classifier's head is `score.weight` [K, C] (nn.Linear, like our out_head.weight).
enum HFTensors {
    /// The transformer's tensors, `transformer.`-prefixed. A model without a q/k/v bias gets a
    /// zero `c_attn.bias` (transformers' GPT-2 always has one): the same function.
    static func transformer(_ layout: ParameterLayout, _ params: [Float],
                            replacing overrides: [String: [Float]] = [:]) -> [NamedTensor] {
        var out: [NamedTensor] = []
        for spec in layout.tensors where !spec.name.hasPrefix("out_head.") {
            out.append(("transformer." + spec.name, spec.shape, overrides[spec.name] ?? Array(params[spec.range])))
            if !layout.config.qkvBias, spec.name.hasSuffix(".attn.c_attn.weight") {
                let bias = spec.name.replacingOccurrences(of: ".weight", with: ".bias")
                out.append(("transformer." + bias, [3 * layout.config.embDim], [Float](repeating: 0, count: 3 * layout.config.embDim)))
            }
        }
        return out
    }

    /// GPT2LMHeadModel: the transformer, plus `lm_head.weight` = wte + delta when the head is untied.
    static func languageModel(_ layout: ParameterLayout, _ params: [Float], headDelta: [Float]?) -> [NamedTensor] {
        var out = transformer(layout, params)
        if let headDelta, let wte = layout.spec(named: "wte.weight") {
            out.append(("lm_head.weight", wte.shape, zip(params[wte.range], headDelta).map { $0 + $1 }))
        }
        return out
    }

    /// GPT2ForSequenceClassification: the transformer with the folded ln_f.bias, and `score.weight`.
    static func sequenceClassification(_ layout: ParameterLayout, _ params: [Float], finalNormBias: [Float]) -> [NamedTensor] {
        let w = layout.spec(named: "out_head.weight")!
        return transformer(layout, params, replacing: ["ln_f.bias": finalNormBias]) + [("score.weight", w.shape, Array(params[w.range]))]
    }
}

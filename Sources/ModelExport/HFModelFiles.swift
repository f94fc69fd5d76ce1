import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer

/// The JSON files of a Hugging Face GPT-2 folder, from our config.
///
/// `config.json` uses transformers' `GPT2Config` keys: our emb_dim / n_layers / n_heads /
/// context_length / vocab_size are n_embd / n_layer / n_head / n_positions / vocab_size; the
/// rest states what our kernels compute (GELU's tanh form is transformers' "gelu_new",
/// LayerNorm's epsilon is 1e-5, attention scores are scaled by 1/sqrt(head_dim) and nothing
/// else), and dropout is our drop_rate (inactive at inference).
enum HFModelFiles {
    static let endOfText = GPT2BPETokenizer.endOfText
    static let endOfTextID = GPT2BPETokenizer.endOfTextID

    /// What sits on top of the transformer in the exported folder.
    enum Architecture {
        /// GPT2LMHeadModel; `tied` false when the head differs from wte (a merged LoRA head adapter).
        case languageModel(tied: Bool)
        /// GPT2ForSequenceClassification with these class names and the pad id it pools by.
        case sequenceClassification(labels: [String], padTokenID: Int)
    }

    static func config(_ c: GPT2Config, architecture: Architecture) -> JSONValue {
        var o: [String: JSONValue] = [
            "model_type": "gpt2", "n_embd": .int(c.embDim), "n_layer": .int(c.nLayers), "n_head": .int(c.nHeads),
            "n_positions": .int(c.contextLength), "n_ctx": .int(c.contextLength), "vocab_size": .int(c.vocabSize),
            "n_inner": .null, "activation_function": "gelu_new", "layer_norm_epsilon": .double(1e-5),
            "resid_pdrop": .double(c.dropRate.shortestDouble), "embd_pdrop": .double(c.dropRate.shortestDouble),
            "attn_pdrop": .double(c.dropRate.shortestDouble), "initializer_range": .double(0.02),
            "scale_attn_weights": true, "scale_attn_by_inverse_layer_idx": false, "reorder_and_upcast_attn": false,
            "use_cache": true, "bos_token_id": .int(endOfTextID), "eos_token_id": .int(endOfTextID),
            "torch_dtype": "float32", "dtype": "float32",
        ]
        switch architecture {
        case .languageModel(let tied):
            o["architectures"] = ["GPT2LMHeadModel"]
            o["tie_word_embeddings"] = .bool(tied)
        case .sequenceClassification(let labels, let pad):
            o["architectures"] = ["GPT2ForSequenceClassification"]
            o["pad_token_id"] = .int(pad)
            o["problem_type"] = "single_label_classification"
            o["id2label"] = .object(Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0), .string($1)) }))
            o["label2id"] = .object(Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, .int($0)) }))
        }
        return .object(o)
    }

    /// Greedy decoding that stops at <|endoftext|> (what `evaluate instruct` does).
    static func generationConfig() -> JSONValue {
        ["bos_token_id": .int(endOfTextID), "eos_token_id": .int(endOfTextID), "pad_token_id": .int(endOfTextID),
         "do_sample": false]
    }

    /// tokenizer_config.json: GPT-2's byte-level BPE with <|endoftext|> as its only special token
    /// (begin, end, unknown and padding), no prefix space, no BOS added; `maxLength` is the
    /// length a text is cut to (the classifier's padded length, else the context).
    static func tokenizerConfig(maxLength: Int, chatTemplate: String?) -> JSONValue {
        var o: [String: JSONValue] = [
            "tokenizer_class": "GPT2Tokenizer", "bos_token": .string(endOfText), "eos_token": .string(endOfText),
            "unk_token": .string(endOfText), "pad_token": .string(endOfText), "add_prefix_space": false,
            "add_bos_token": false, "errors": "replace", "model_max_length": .int(maxLength), "padding_side": "right",
            "clean_up_tokenization_spaces": false,
            "added_tokens_decoder": [String(endOfTextID): [
                "content": .string(endOfText), "lstrip": false, "rstrip": false, "normalized": true,
                "single_word": false, "special": true]],
        ]
        if let chatTemplate { o["chat_template"] = .string(chatTemplate) }
        return .object(o)
    }

    static func specialTokensMap() -> JSONValue {
        ["bos_token": .string(endOfText), "eos_token": .string(endOfText), "unk_token": .string(endOfText),
         "pad_token": .string(endOfText)]
    }

    /// Pretty, sorted-key JSON with a final newline (stable bytes for the manifest's hashes).
    static func encoded(_ value: JSONValue) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try enc.encode(value)
        data.append(0x0A)
        return data
    }
}

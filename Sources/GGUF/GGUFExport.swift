import ArtifactKit
import Foundation
import GPT2
import GPT2Weights

/// What an export wrote.
public struct GGUFExportSummary: Sendable {
    public var url: URL
    public var type: GGUFType
    public var bytes: Int
    public var sha256: String
    public var tensorCount: Int
    /// Tensors per storage type, e.g. ["F32": 26, "Q8_0": 9].
    public var tensorsByType: [String: Int]
    /// The LoRA adapters merged into the weights (rank, alpha), when the checkpoint had them.
    public var mergedLoRA: LoRASettings?
    /// True when `output.weight` is written (a merged lm_head adapter unties the head from wte).
    public var untiedHead: Bool
}

/// A fine-tuned language-model checkpoint (`train instruct`'s model.safetensors) to one GGUF file
/// that llama.cpp, llama-cpp-python and Ollama load as a `gpt2` model. See docs/gguf.md.
public enum GGUFExport {
    static let rerun = "export --to gguf FILE --type f32|f16|q8_0"

    /// Reads `checkpoint` and the GPT-2 vocabulary in `vocabulary` (encoder.json + vocab.bpe),
    /// merges LoRA adapters (W + alpha A B, our convention: see GPT2/LoRA.swift), and writes
    /// `destination` atomically. Refuses a classifier checkpoint, non-finite or unrepresentable
    /// weights, and an existing destination unless `force`.
    /// - Parameters:
    ///   - name: `general.name` (defaults to the file name without extension).
    ///   - chatTemplate: `tokenizer.chat_template` (a Jinja template), when the model has one.
    @discardableResult
    public static func write(checkpoint: URL, vocabulary: URL, type: GGUFType, name: String? = nil, chatTemplate: String? = nil,
                             to destination: URL, force: Bool = false) throws -> GGUFExportSummary {
        try checkDestination(destination, force: force)
        let loaded = try loadCheckpointWithLoRA(from: checkpoint)
        try refuseClassifier(loaded.layout, source: checkpoint.path)
        return try write(layout: loaded.layout, params: loaded.params, lora: loaded.lora, source: checkpoint.path,
                         vocabulary: try GGUFVocabulary(directory: vocabulary), type: type, name: name,
                         chatTemplate: chatTemplate, to: destination, force: force)
    }

    /// The same from parameters in memory (`source` names them in messages).
    @discardableResult
    public static func write(layout: ParameterLayout, params: [Float], lora: LoRAWeights?, source: String,
                             vocabulary: GGUFVocabulary, type: GGUFType, name: String? = nil, chatTemplate: String? = nil,
                             to destination: URL, force: Bool = false) throws -> GGUFExportSummary {
        try checkDestination(destination, force: force)
        try refuseClassifier(layout, source: source)
        guard layout.config.vocabSize == vocabulary.tokens.count else {
            throw PipelineError("the model's vocabulary has \(layout.config.vocabSize) tokens but encoder.json has \(vocabulary.tokens.count)",
                                location: source, hint: "GGUF needs one token string per embedding row: use GPT-2's 50,257-token vocabulary")
        }
        let merged = try mergeLoRA(lora, into: params, layout: layout)
        try checkValues(layout: layout, params: merged.params, head: merged.head, type: type, source: source)
        let title = name ?? destination.deletingPathExtension().lastPathComponent
        let writer = GPT2GGUF.writer(layout: layout, params: merged.params, untiedHead: merged.head, type: type,
                                     vocabulary: vocabulary, name: title.isEmpty ? "gpt2" : title, chatTemplate: chatTemplate)
        try writer.write(to: destination)
        var byType: [String: Int] = [:]
        for t in writer.tensors { byType[t.type.description, default: 0] += 1 }
        return GGUFExportSummary(url: destination, type: type, bytes: TextFormat.fileSize(destination),
                                 sha256: try FileHash.sha256(of: destination), tensorCount: writer.tensors.count,
                                 tensorsByType: byType, mergedLoRA: lora?.settings, untiedHead: merged.head != nil)
    }

    /// The weights with the adapters folded in (W + alpha A B, our convention: GPT2/LoRA.swift),
    /// and the output matrix [V, C] = wte + alpha (A B)^T when the tied head's adapter changes
    /// it (nil: the head stays tied to wte and llama.cpp reuses token_embd).
    static func mergeLoRA(_ lora: LoRAWeights?, into params: [Float], layout: ParameterLayout) throws -> (params: [Float], head: [Float]?) {
        guard let lora else { return (params, nil) }
        let merged = try lora.merged(into: params, layout: layout, skippingTiedHead: true)
        guard let delta = lora.tiedHeadDelta(), let wte = layout.spec(named: "wte.weight") else { return (merged, nil) }
        return (merged, zip(params[wte.range], delta).map { $0 + $1 })
    }

    static func refuseClassifier(_ layout: ParameterLayout, source: String) throws {
        guard case .classifier(let k) = layout.head else { return }
        throw PipelineError("this is a classifier checkpoint (\(k) classes); GGUF's gpt2 architecture is a language model and has no classification head",
                            location: source,
                            hint: "export a `train instruct` checkpoint to GGUF; a classifier goes to Hugging Face with `export --to hf DIR`")
    }

    /// An existing destination is replaced only with `force`; a directory never.
    static func checkDestination(_ url: URL, force: Bool) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue {
            throw PipelineError("the GGUF destination is a directory", location: url.path, hint: "name a file, e.g. `\(rerun.replacingOccurrences(of: "FILE", with: url.appendingPathComponent("model.gguf").path))`")
        }
        guard force else {
            throw PipelineError("the GGUF destination already exists", location: url.path,
                                hint: "pass --force to replace it, or choose another file name")
        }
    }

    /// Every value finite, and every matrix representable in its storage type (F16 tops out at
    /// 65504; a Q8_0 block's scale amax/127 is an F16 too).
    static func checkValues(layout: ParameterLayout, params: [Float], head: [Float]?, type: GGUFType, source: String) throws {
        let limit: Float = type == .f16 ? 65504 : type == .q8_0 ? 65504 * 127 : .greatestFiniteMagnitude
        var named = layout.tensors.map { ($0.name, params[$0.range], $0.shape.count == 2 && $0.name != "wpe.weight") }
        if let head { named.append(("lm_head (wte + merged LoRA)", head[...], true)) }
        for (name, values, isMatrix) in named {
            if let bad = values.first(where: { !$0.isFinite }) {
                throw PipelineError("refusing to export: tensor \(name) holds a non-finite value (\(bad))", location: source,
                                    hint: "the training run diverged; retrain with a lower learning rate, then rerun `\(rerun)`")
            }
            if isMatrix, let big = values.first(where: { abs($0) > limit }) {
                throw PipelineError("tensor \(name) holds \(big), which \(type.rawValue) cannot represent", location: source,
                                    hint: "export with --type f32")
            }
        }
    }
}

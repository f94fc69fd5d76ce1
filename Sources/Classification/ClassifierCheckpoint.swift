import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import TrainingKit

/// The fine-tuned classifier on disk: GPT2's safetensors checkpoint (`saveCheckpoint`) whose
/// metadata also carries what inference must repeat: the pooling (token position, averaging)
/// and the padding (max length, pad token id) used in training. A LoRA run's checkpoint holds
/// the base weights and the adapters separately; `load` merges them (W + alpha A B, exact up to
/// float rounding) so evaluation and `classify` run a plain model.
public enum ClassifierCheckpoint {
    public static let settingsKey = "training_settings"
    public static let maxLengthKey = "max_length"
    public static let padTokenKey = "pad_token_id"
    /// Class names by id, a JSON list (from the prepared data's manifest).
    public static let labelNamesKey = "label_names"

    /// `names` as the metadata value.
    public static func labelNamesValue(_ names: [String]) -> String {
        JSONValue.array(names.map { .string($0) }).canonicalString
    }

    public struct Loaded {
        public var layout: ParameterLayout
        public var parameters: [Float]
        public var metadata: [String: String]
        /// The training settings (pooling, trainable layers, ...).
        public var settings: ClassifierSettings
        public var maxLength: Int
        public var padTokenID: Int
        public var numClasses: Int
        /// Class names by id (the ids themselves for a checkpoint written before names were recorded).
        public var labelNames: [String]
        /// Whether the checkpoint recorded its class names.
        public var hasLabelNames: Bool
        /// The adapters of a LoRA checkpoint (already merged into `parameters`).
        public var lora: LoRAWeights?
    }

    public static func save(parameters: [Float], layout: ParameterLayout, metadata: [String: String], to url: URL,
                            lora: LoRAWeights? = nil) throws {
        try saveCheckpoint(params: parameters, layout: layout, metadata: metadata, to: url, lora: lora)
    }

    /// `save` with the base tensors made one at a time by `tensor` (a QLoRA run's dequantized base
    /// is never whole in memory).
    public static func save(tensor: @escaping (TensorSpec) -> [Float], layout: ParameterLayout, metadata: [String: String],
                            to url: URL, lora: LoRAWeights? = nil) throws {
        try saveCheckpoint(tensor: tensor, layout: layout, metadata: metadata, to: url, lora: lora)
    }

    public static func load(from url: URL) throws -> Loaded {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError("no trained model here", location: url.path, hint: "run `train` first (pipeline run train)")
        }
        let file = try loadCheckpointWithLoRA(from: url)
        let (layout, meta) = (file.layout, file.metadata)
        let params = try file.lora?.merged(into: file.params, layout: layout) ?? file.params
        guard case .classifier(let k) = layout.head else {
            throw PipelineError("the checkpoint has a language-model head, not a classifier", location: url.path,
                                hint: "pass the model written by `train`")
        }
        guard let settingsText = meta[settingsKey], let maxLength = meta[maxLengthKey].flatMap(Int.init),
              let pad = meta[padTokenKey].flatMap(Int.init) else {
            throw PipelineError("the checkpoint lacks the training settings (\(settingsKey), \(maxLengthKey), \(padTokenKey))",
                                location: url.path, hint: "pass a model written by `train`")
        }
        let settings = try ClassifierSettings.decode(settingsText, source: url.path + " (" + settingsKey + ")")
        let names = meta[labelNamesKey].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
        guard names == nil || names?.count == k else {
            throw PipelineError("the checkpoint names \(names!.count) classes but its head has \(k) outputs", location: url.path,
                                hint: "retrain with `pipeline run train`")
        }
        return Loaded(layout: layout, parameters: params, metadata: meta, settings: settings, maxLength: maxLength, padTokenID: pad,
                      numClasses: k, labelNames: names ?? (0..<k).map(String.init), hasLabelNames: names != nil, lora: file.lora)
    }
}

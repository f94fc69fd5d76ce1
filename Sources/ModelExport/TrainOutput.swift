import ArtifactKit
import Foundation
import GPT2
import GPT2Weights

/// Which checkpoint of a training run to take: the final one (`model.safetensors`) or the one of
/// the best evaluation (`best/model.safetensors`, written by `--save-best`).
public enum CheckpointChoice: String, CaseIterable, Sendable {
    case last
    case best
}

/// What a `train` (chapter 6) or `train instruct` (chapter 7) output folder holds, read once and
/// checked: the checkpoint (base weights, LoRA adapters when the run had them, metadata), the
/// run's manifest, and what inference must repeat (the classifier's pooling, padding and class
/// names; the instruction model's prompt style). Export, and any tool that serves a trained
/// model, load it through here.
public struct TrainOutput {
    public enum Kind: String, Sendable {
        case classifier
        case instruct
    }

    /// What the classifier's checkpoint metadata says inference must repeat.
    public struct ClassifierInfo: Sendable {
        /// Class names by id (the ids as text when the run recorded none).
        public var labelNames: [String]
        /// The id rows were padded with, and the length they were padded (and cut) to.
        public var padTokenID: Int
        public var maxLength: Int
        /// `token_position` of the training settings: last, first or flexible.
        public var tokenPosition: String
        /// `average_embeddings` of the training settings.
        public var averageEmbeddings: Bool
    }

    public var kind: Kind
    public var folder: URL
    public var choice: CheckpointChoice
    public var checkpointURL: URL
    public var manifest: Manifest
    public var checkpoint: LoadedCheckpoint
    /// Classifier runs only.
    public var classifier: ClassifierInfo?
    /// Instruct runs only: alpaca, phi3 or chatml.
    public var promptStyle: String?

    public var layout: ParameterLayout { checkpoint.layout }
    public var config: GPT2Config { checkpoint.layout.config }
    public var lora: LoRAWeights? { checkpoint.lora }

    /// The manifest formats of the two training stages (ClassifierTrainStage / InstructTrainStage).
    static let trainFormats: [String: Kind] = ["classifier-training": .classifier, "instruct-training": .instruct]
    static let modelFile = "model.safetensors"
    static let bestModelFile = "best/model.safetensors"

    /// Checkpoint metadata keys written by the trainers (ClassifierCheckpoint, InstructTrainStage).
    enum MetadataKey {
        static let labelNames = "label_names"
        static let padTokenID = "pad_token_id"
        static let maxLength = "max_length"
        static let classifierSettings = "training_settings"
        static let promptStyle = "prompt_style"
    }

    /// Reads `folder`; a folder that is not a finished training run is an error naming the
    /// missing file and the command that writes it.
    public init(folder: URL, checkpoint choice: CheckpointChoice = .last) throws {
        let manifestURL = folder.appendingPathComponent(Manifest.fileName)
        try Self.requireFolder(folder)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw PipelineError("not a training output: manifest.json is missing", location: folder.path,
                                hint: "pass the folder written by `train` (data/train) or `train instruct` (data/instruct-train); run `pipeline run train` first")
        }
        let manifest = try Manifest.read(from: manifestURL)
        guard let kind = Self.trainFormats[manifest.format] else {
            throw PipelineError("not a training output: manifest.json is a \"\(manifest.format)\" manifest (written by `\(manifest.tool)`), not one of `train` or `train instruct`",
                                location: manifestURL.path, hint: "pass the folder written by `train` or `train instruct`")
        }
        let url = folder.appendingPathComponent(choice == .last ? Self.modelFile : Self.bestModelFile)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw choice == .best
                ? PipelineError("the run kept no best checkpoint: best/model.safetensors is missing", location: folder.path,
                                hint: "train with --save-best (train.save_best: true), or export --checkpoint last")
                : PipelineError("not a finished training output: model.safetensors is missing", location: folder.path,
                                hint: "rerun `\(manifest.tool)` (pipeline run) to write it")
        }
        self.kind = kind
        self.folder = folder
        self.choice = choice
        self.checkpointURL = url
        self.manifest = manifest
        self.checkpoint = try loadCheckpointWithLoRA(from: url)
        try readInferenceSettings()
    }

    private static func requireFolder(_ folder: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw PipelineError("no such training output folder", location: folder.path,
                                hint: "pass the folder written by `train` (data/train) or `train instruct` (data/instruct-train)")
        }
    }

    /// Fills `classifier` or `promptStyle` from the checkpoint metadata; the head must be the
    /// one the manifest's stage writes.
    private mutating func readInferenceSettings() throws {
        let meta = checkpoint.metadata, path = checkpointURL.path
        switch (kind, layout.head) {
        case (.instruct, .languageModel):
            promptStyle = meta[MetadataKey.promptStyle] ?? "alpaca"
        case (.classifier, .classifier(let k)):
            classifier = try Self.classifierInfo(meta, numClasses: k, path: path)
        default:
            throw PipelineError("the checkpoint's head (\(layout.head)) does not belong to a \(kind.rawValue) run", location: path,
                                hint: "the folder mixes files of two runs; rerun `\(manifest.tool)`")
        }
    }

    static func classifierInfo(_ meta: [String: String], numClasses k: Int, path: String) throws -> ClassifierInfo {
        guard let pad = meta[MetadataKey.padTokenID].flatMap(Int.init), let maxLength = meta[MetadataKey.maxLength].flatMap(Int.init),
              let settingsText = meta[MetadataKey.classifierSettings],
              case .object(let settings)? = try? JSONDecoder().decode(JSONValue.self, from: Data(settingsText.utf8)) else {
            throw PipelineError("the classifier checkpoint lacks its training settings (\(MetadataKey.padTokenID), \(MetadataKey.maxLength), \(MetadataKey.classifierSettings))",
                                location: path, hint: "pass a model written by `train`")
        }
        var names = (0..<k).map(String.init)
        if let text = meta[MetadataKey.labelNames] {
            guard let decoded = try? JSONDecoder().decode([String].self, from: Data(text.utf8)), decoded.count == k else {
                throw PipelineError("the checkpoint's label_names do not name its \(k) classes", location: path,
                                    hint: "retrain with `pipeline run train`")
            }
            names = decoded
        }
        var averages = false
        if case .bool(let b)? = settings["average_embeddings"] { averages = b }
        return ClassifierInfo(labelNames: names, padTokenID: pad, maxLength: maxLength,
                              tokenPosition: settings["token_position"]?.stringValue ?? "last", averageEmbeddings: averages)
    }

    /// The parameters with the LoRA adapters folded in where they can be (W + alpha A B); the
    /// adapter of the tied language-model head cannot be folded into `wte` (the input embedding)
    /// and comes back apart, as the head's change alpha (A B)^T (nil when it changes nothing).
    public func mergedParameters() throws -> (params: [Float], lmHeadDelta: [Float]?) {
        guard let lora else { return (checkpoint.params, nil) }
        return (try lora.merged(into: checkpoint.params, layout: layout, skippingTiedHead: true), lora.tiedHeadDelta())
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights

/// Where `export` writes a model: a Hugging Face folder, or (not built yet) a GGUF file.
public enum ExportTarget: String, CaseIterable, Sendable {
    case hf
    case gguf
}

/// Inputs and switches of `export --to hf`: the `train` / `train instruct` output folder, the
/// destination, the folder with encoder.json and vocab.bpe (data/raw/gpt2, written by fetch);
/// `merge` folds a LoRA run's adapters into the weights instead of writing a PEFT adapter;
/// `force` replaces an existing destination; `destinationText` is the destination as typed
/// (for adapter_config.json's base_model_name_or_path).
public struct HFExportOptions {
    public var model, destination, vocabDirectory: URL
    public var merge, force: Bool
    public var checkpoint: CheckpointChoice
    public var destinationText: String?

    public init(model: URL, destination: URL, vocabDirectory: URL, merge: Bool = false, force: Bool = false,
                checkpoint: CheckpointChoice = .last, destinationText: String? = nil) {
        (self.model, self.destination, self.vocabDirectory) = (model, destination, vocabDirectory)
        (self.merge, self.force, self.checkpoint, self.destinationText) = (merge, force, checkpoint, destinationText)
    }
}

/// `export --to hf`: a training run's model as a folder transformers (and PEFT) load.
///
/// - instruction model: GPT2LMHeadModel (`config.json`, `model.safetensors`,
///   `generation_config.json`, tokenizer files with the prompt style's chat template);
/// - classifier: GPT2ForSequenceClassification (ClassifierMapping says which settings map);
/// - LoRA run without `merge`: DEST is a PEFT adapter folder and DEST/base the model it adapts
///   (the run's frozen base weights; for a classifier, with the head's bias folded for the
///   adapted head, which is the head the pair computes with); with `merge`, the folded weights
///   (an adapted LM head becomes an untied `lm_head.weight`).
public enum HFExport {
    public static let manifestFormat = "hf-export"
    public static let manifestVersion = 1
    public static let baseFolder = "base"

    public static func run(_ o: HFExportOptions) throws -> Manifest {
        try ExportDestination.build(o.destination, force: o.force) { dest in
            let run = try TrainOutput(folder: o.model, checkpoint: o.checkpoint)
            let tokenizer = try checkVocabulary(o.vocabDirectory, config: run.config, location: run.checkpointURL.path)
            var stats = try writeModel(run, o, into: &dest)
            stats["tokenizer_vocabulary_size"] = .int(tokenizer.vocabularySize)
            return Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "export",
                            params: params(o, run), inputs: try inputs(run, o), stats: stats)
        }
    }

    /// Writes the model files for the run's kind; returns the manifest's stats.
    static func writeModel(_ run: TrainOutput, _ o: HFExportOptions, into dest: inout ExportDestination) throws -> [String: JSONValue] {
        let location = run.checkpointURL.path
        switch run.kind {
        case .classifier:
            // The bias is folded for the head the model computes with: the adapted one.
            let merged = try run.mergedParameters().params
            let mapping = try ClassifierMapping(info: run.classifier!, layout: run.layout, params: merged, location: location)
            var stats: [String: JSONValue] = ["architecture": "GPT2ForSequenceClassification", "pad_token_id": .int(mapping.padTokenID),
                                              "bias_fold_residual": .double(mapping.foldResidual)]
            if let lora = run.lora, !o.merge {
                try writeClassifier(run, params: run.checkpoint.params, mapping: mapping, o, into: &dest, folder: baseFolder + "/")
                try writeAdapter(lora, run, o, into: &dest)
                stats["lora"] = "peft-adapter"
            } else {
                try writeClassifier(run, params: merged, mapping: mapping, o, into: &dest, folder: "")
                stats["lora"] = .string(run.lora == nil ? "none" : "merged")
            }
            return stats
        case .instruct:
            if let lora = run.lora, !o.merge {
                try writeLanguageModel(run, params: run.checkpoint.params, headDelta: nil, o, into: &dest, folder: baseFolder + "/")
                try writeAdapter(lora, run, o, into: &dest)
                return ["architecture": "GPT2LMHeadModel", "lora": "peft-adapter", "tied_lm_head": true]
            }
            let (params, delta) = try run.mergedParameters()
            try writeLanguageModel(run, params: params, headDelta: delta, o, into: &dest, folder: "")
            return ["architecture": "GPT2LMHeadModel", "lora": .string(run.lora == nil ? "none" : "merged"), "tied_lm_head": .bool(delta == nil)]
        }
    }

    static func writeLanguageModel(_ run: TrainOutput, params: [Float], headDelta: [Float]?, _ o: HFExportOptions,
                                   into dest: inout ExportDestination, folder: String) throws {
        let c = run.config
        try dest.put(folder + "config.json", HFModelFiles.encoded(HFModelFiles.config(c, architecture: .languageModel(tied: headDelta == nil))))
        try dest.put(folder + "generation_config.json", HFModelFiles.encoded(HFModelFiles.generationConfig()))
        try dest.putTensors(folder + "model.safetensors", HFTensors.languageModel(run.layout, params, headDelta: headDelta))
        try writeTokenizer(o, maxLength: c.contextLength, chatTemplate: run.promptStyle.flatMap(ChatTemplate.forStyle), into: &dest, folder: folder)
    }

    static func writeClassifier(_ run: TrainOutput, params: [Float], mapping: ClassifierMapping, _ o: HFExportOptions,
                                into dest: inout ExportDestination, folder: String) throws {
        let info = run.classifier!
        let architecture = HFModelFiles.Architecture.sequenceClassification(labels: info.labelNames, padTokenID: mapping.padTokenID)
        try dest.put(folder + "config.json", HFModelFiles.encoded(HFModelFiles.config(run.config, architecture: architecture)))
        try dest.putTensors(folder + "model.safetensors",
                            HFTensors.sequenceClassification(run.layout, params, finalNormBias: mapping.finalNormBias))
        try writeTokenizer(o, maxLength: info.maxLength, chatTemplate: nil, into: &dest, folder: folder)
    }

    /// The PEFT adapter in DEST, referring to DEST/base.
    static func writeAdapter(_ lora: LoRAWeights, _ run: TrainOutput, _ o: HFExportOptions, into dest: inout ExportDestination) throws {
        let basePath = ((o.destinationText ?? o.destination.path) as NSString).appendingPathComponent(baseFolder)
        try dest.put(PEFTAdapter.configFile,
                     HFModelFiles.encoded(PEFTAdapter.config(lora, basePath: basePath, classifier: run.kind == .classifier)))
        try dest.putTensors(PEFTAdapter.modelFile, PEFTAdapter.tensors(lora))
        try writeTokenizer(o, maxLength: run.classifier?.maxLength ?? run.config.contextLength,
                           chatTemplate: run.promptStyle.flatMap(ChatTemplate.forStyle), into: &dest, folder: "")
    }

    /// vocab.json and merges.txt are OpenAI's encoder.json and vocab.bpe byte for byte (the
    /// same token -> id map, and the merges after a "#version" line, which GPT2Tokenizer skips).
    static func writeTokenizer(_ o: HFExportOptions, maxLength: Int, chatTemplate: String?,
                               into dest: inout ExportDestination, folder: String) throws {
        try dest.copy(o.vocabDirectory.appendingPathComponent("encoder.json"), as: folder + "vocab.json")
        try dest.copy(o.vocabDirectory.appendingPathComponent("vocab.bpe"), as: folder + "merges.txt")
        try dest.put(folder + "tokenizer_config.json",
                     HFModelFiles.encoded(HFModelFiles.tokenizerConfig(maxLength: maxLength, chatTemplate: chatTemplate)))
        try dest.put(folder + "special_tokens_map.json", HFModelFiles.encoded(HFModelFiles.specialTokensMap()))
    }

    /// The vocabulary must load, and the model must have an embedding row for every id it makes.
    static func checkVocabulary(_ dir: URL, config: GPT2Config, location: String) throws -> GPT2BPETokenizer {
        let tokenizer = try GPT2BPETokenizer(directory: dir)
        guard config.vocabSize >= tokenizer.vocabularySize else {
            throw PipelineError("the model's vocab_size \(config.vocabSize) is smaller than the tokenizer's \(tokenizer.vocabularySize) tokens: the exported tokenizer would make ids the model has no embedding for",
                                location: location, hint: "export a model trained with GPT-2's vocabulary (vocab_size 50257)")
        }
        return tokenizer
    }

    static func params(_ o: HFExportOptions, _ run: TrainOutput) -> [String: JSONValue] {
        ["to": "hf", "merge": .bool(o.merge), "checkpoint": .string(o.checkpoint.rawValue), "kind": .string(run.kind.rawValue),
         "config": (try? .encoding(run.config)) ?? .null, "prompt_style": run.promptStyle.map { .string($0) } ?? .null,
         "label_names": run.classifier.map { .array($0.labelNames.map { .string($0) }) } ?? .null,
         "lora_rank": run.lora.map { .int($0.settings.rank) } ?? .null,
         "lora_alpha": run.lora.map { .double($0.settings.alpha.shortestDouble) } ?? .null]
    }

    static func inputs(_ run: TrainOutput, _ o: HFExportOptions) throws -> [FileRecord] {
        try FileRecord.inputs([run.checkpointURL, run.folder.appendingPathComponent(Manifest.fileName),
                               o.vocabDirectory.appendingPathComponent("encoder.json"),
                               o.vocabDirectory.appendingPathComponent("vocab.bpe")])
    }
}

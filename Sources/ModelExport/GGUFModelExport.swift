import ArtifactKit
import Foundation
import GGUF
import GPT2Weights
import Instruct

/// Inputs and switches of `export --to gguf`: the `train instruct` output folder, the destination
/// (a `.gguf` file, or a folder that gets `model.gguf`), the tokenizer folder and the type.
public struct GGUFModelExportOptions {
    public var model, destination, vocabDirectory: URL
    public var type: GGUFType
    public var force: Bool
    public var checkpoint: CheckpointChoice

    public init(model: URL, destination: URL, vocabDirectory: URL, type: GGUFType, force: Bool = false,
                checkpoint: CheckpointChoice = .last) {
        (self.model, self.destination, self.vocabDirectory) = (model, destination, vocabDirectory)
        (self.type, self.force, self.checkpoint) = (type, force, checkpoint)
    }

    /// A destination ending in `.gguf` is the file itself; anything else is a folder.
    public var isFile: Bool { destination.pathExtension.lowercased() == "gguf" }
}

/// `export --to gguf`: an instruction model (LoRA merged) as a GGUF file of llama.cpp's `gpt2`
/// architecture (GGUFExport) plus an Ollama `Modelfile` with the prompt template of its
/// training (PromptStyle.ollamaTemplate) and `tokenizer.chat_template` (ChatTemplate).
///
/// - `DEST.gguf`: that file and `Modelfile` beside it, each written atomically;
/// - `DEST` (a folder): `model.gguf`, `Modelfile` and `manifest.json` (hashes, params), built in
///   a temporary sibling and renamed into place, as `--to hf` does.
public enum GGUFModelExport {
    public static let manifestFormat = "gguf-export"
    public static let manifestVersion = 1
    public static let modelFile = "model.gguf"
    public static let modelfileName = "Modelfile"

    /// Returns the manifest (written into a folder destination; returned only for a file).
    @discardableResult
    public static func run(_ o: GGUFModelExportOptions) throws -> Manifest {
        let run = try TrainOutput(folder: o.model, checkpoint: o.checkpoint)
        guard run.kind == .instruct else {
            throw PipelineError("this is a classifier (train's output); GGUF's gpt2 architecture is a language model and has no classification head",
                                location: run.checkpointURL.path, hint: "export a classifier with `env export --to hf`")
        }
        let style = run.promptStyle.flatMap(PromptStyle.init(rawValue:)) ?? .alpaca
        if o.isFile { return try writeFile(run, style: style, o) }
        return try ExportDestination.build(o.destination, force: o.force) { dest in
            let manifest = try write(run, style: style, o, gguf: dest.staging.appendingPathComponent(modelFile),
                                     modelfile: dest.staging.appendingPathComponent(modelfileName), force: false)
            dest.record([modelFile, modelfileName])
            return manifest
        }
    }

    static func writeFile(_ run: TrainOutput, style: PromptStyle, _ o: GGUFModelExportOptions) throws -> Manifest {
        let modelfile = o.destination.deletingLastPathComponent().appendingPathComponent(modelfileName)
        if FileManager.default.fileExists(atPath: modelfile.path) && !o.force {
            throw PipelineError("a Modelfile already exists beside the GGUF destination", location: modelfile.path,
                                hint: "pass --force to replace it, or export into another folder")
        }
        var manifest = try write(run, style: style, o, gguf: o.destination, modelfile: modelfile, force: o.force)
        manifest.outputs = [try FileRecord.of(o.destination, as: o.destination.lastPathComponent),
                            try FileRecord.of(modelfile, as: modelfileName)]
        return manifest
    }

    static func write(_ run: TrainOutput, style: PromptStyle, _ o: GGUFModelExportOptions, gguf: URL, modelfile: URL,
                      force: Bool) throws -> Manifest {
        let summary = try GGUFExport.write(layout: run.layout, params: run.checkpoint.params, lora: run.lora,
                                           source: run.checkpointURL.path, vocabulary: try GGUFVocabulary(directory: o.vocabDirectory),
                                           type: o.type, name: run.folder.lastPathComponent, chatTemplate: ChatTemplate.forStyle(style.rawValue),
                                           to: gguf, force: force)
        try OllamaModelfile(ggufFileName: gguf.lastPathComponent, template: style.ollamaTemplate, stops: style.stopSequences)
            .write(to: modelfile, force: true)
        let params: [String: JSONValue] = ["to": "gguf", "type": .string(o.type.rawValue), "checkpoint": .string(o.checkpoint.rawValue),
                                           "prompt_style": .string(style.rawValue)]
        let stats: [String: JSONValue] = ["tensors": .int(summary.tensorCount), "bytes": .int(summary.bytes),
                                          "lora": .string(summary.mergedLoRA == nil ? "none" : "merged"),
                                          "untied_head": .bool(summary.untiedHead)]
        return Manifest(format: manifestFormat, formatVersion: manifestVersion, tool: "export", params: params,
                        inputs: try FileRecord.inputs([run.checkpointURL, o.vocabDirectory.appendingPathComponent("encoder.json"),
                                                       o.vocabDirectory.appendingPathComponent("vocab.bpe")]),
                        stats: stats)
    }
}

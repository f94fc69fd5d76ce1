import ArgumentParser
import ArtifactKit
import Foundation
import GGUF
import ModelExport
import ToolSupport

extension ExportTarget: ExpressibleByArgument {}
extension CheckpointChoice: ExpressibleByArgument {}
extension GGUFType: ExpressibleByArgument {}

/// `export`: a model trained by `train` or `train instruct` as files other tools load. See
/// docs/export.md. (`export` is also a shell builtin: in a shell or a pipeline stage run it as
/// `env export ...` or by its path, e.g. `.build/release/export`.)
@main
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a trained model: --to hf writes a Hugging Face folder (transformers; a PEFT adapter for LoRA runs unless --merge); --to gguf a llama.cpp / Ollama file with its Modelfile.",
        discussion: "`export` is also a shell builtin: run this tool as `env export ...` or by its path.")

    @Option(help: "Output folder of `train` or `train instruct`.") var model: Path = "data/train"
    @Option(help: "Target: hf (a Hugging Face folder) or gguf (llama.cpp's gpt2 architecture, instruction models; LoRA merged).") var to: ExportTarget
    @Argument(help: "Destination folder (gguf: a FILE.gguf, with a Modelfile beside it, or a folder that gets model.gguf, Modelfile and manifest.json).") var destination: Path
    @Option(help: "gguf: the tensors' type, f32, f16 or q8_0 (norms, biases and position embeddings stay f32).") var type: GGUFType = .f32
    @Flag(help: "LoRA runs: fold the adapters into the weights instead of writing a PEFT adapter.") var merge = false
    @Flag(help: "Replace an existing destination.") var force = false
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe).") var vocab: Path = "data/raw/gpt2"
    @Option(help: "Which checkpoint: last (model.safetensors) or best (best/model.safetensors, from --save-best).")
    var checkpoint: CheckpointChoice = .last

    static func main() { mainTranslatingErrors() }

    func run() throws {
        switch to {
        case .gguf:
            let o = GGUFModelExportOptions(model: model.url, destination: destination.url, vocabDirectory: vocab.url, type: type,
                                           force: force, checkpoint: checkpoint)
            let manifest = try GGUFModelExport.run(o)
            let size = manifest.stats["bytes"]?.intValue.map(TextFormat.bytes) ?? "?"
            print("wrote \(destination) (gguf \(type.rawValue), \(size), LoRA \(manifest.stats["lora"]?.stringValue ?? "none")): "
                  + (o.isFile ? manifest.outputs.map(\.path).joined(separator: ", ") : "model.gguf, Modelfile, manifest.json"))
        case .hf:
            let manifest = try HFExport.run(HFExportOptions(model: model.url, destination: destination.url, vocabDirectory: vocab.url,
                                                            merge: merge, force: force, checkpoint: checkpoint,
                                                            destinationText: destination.text))
            let kind = manifest.stats["architecture"]?.stringValue ?? "model"
            let lora = manifest.stats["lora"]?.stringValue ?? "none"
            print("wrote \(destination) (\(kind)\(lora == "none" ? "" : ", LoRA \(lora)")): "
                  + manifest.outputs.map(\.path).joined(separator: ", "))
        }
    }
}

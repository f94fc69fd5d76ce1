import ArgumentParser
import ArtifactKit
import Foundation
import ModelExport
import ToolSupport

extension ExportTarget: ExpressibleByArgument {}
extension CheckpointChoice: ExpressibleByArgument {}

/// `export`: a model trained by `train` or `train instruct` as files other tools load. See
/// docs/export.md. (`export` is also a shell builtin: in a shell or a pipeline stage run it as
/// `env export ...` or by its path, e.g. `.build/release/export`.)
@main
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a trained model: --to hf writes a Hugging Face folder (transformers; a PEFT adapter for LoRA runs unless --merge).",
        discussion: "`export` is also a shell builtin: run this tool as `env export ...` or by its path.")

    @Option(help: "Output folder of `train` or `train instruct`.") var model: Path = "data/train"
    @Option(help: "Target: hf (a Hugging Face folder) or gguf (not built yet).") var to: ExportTarget
    @Argument(help: "Destination folder.") var destination: Path
    @Flag(help: "LoRA runs: fold the adapters into the weights instead of writing a PEFT adapter.") var merge = false
    @Flag(help: "Replace an existing destination.") var force = false
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe).") var vocab: Path = "data/raw/gpt2"
    @Option(help: "Which checkpoint: last (model.safetensors) or best (best/model.safetensors, from --save-best).")
    var checkpoint: CheckpointChoice = .last

    static func main() { mainTranslatingErrors() }

    func run() throws {
        switch to {
        case .gguf:
            throw PipelineError("export --to gguf is not built yet", location: "--to gguf",
                                hint: "use --to hf for now (docs/export.md)")
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

import ArgumentParser
import ArtifactKit
import Foundation
import GPT2Weights
import Instruct
import ToolSupport
import TrainingKit

/// `train instruct`: instruction fine-tuning of GPT-2 on the rows of `prepare instruct`
/// (chapter 7 of the book). See docs/instruct.md.
struct TrainInstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct",
        abstract: "Instruction fine-tuning of GPT-2 (all parameters or LoRA adapters, causal-LM loss) on prepared instruction rows (chapter 7).",
        discussion: "Writes model.safetensors, log.jsonl, state (for --resume) and manifest.json into --out. Ctrl-C saves the state and stops; `train instruct --resume` with the same options continues exactly.")

    @Option(help: "Output directory of `prepare instruct`.") var prepared: Path = "data/instruct"
    @Option(help: "Output directory.") var out: Path = "data/instruct-train"
    @Option(help: "Model size (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, 124M, ...) or a JSON config file.") var model = "gpt2-medium"
    @OptionGroup var common: CommonTrainOptions
    @Option(name: .customLong("init"), help: "With --weights random: gpt2 (GPT-2's N(0, 0.02) scheme, initial loss near ln 50257) or torch (PyTorch's module defaults, as the book's GPTModel; with the tied head the loss starts in the hundreds).") var initScheme = InitScheme.gpt2
    @Option(help: "Epochs.") var epochs = 2
    @Option(help: "Evaluate losses every this many steps.") var evalFreq = 5
    @Option(help: "The collate function's allowed_max_length (rows are cut to it).") var allowedMaxLength = 1024
    @Option(help: "true: the loss covers only the responses (exercise 7.2).") var maskInstructions = false
    @Option(help: "all (every parameter, the book's chapter 7) or lora (appendix E: adapters on every Linear layer, all else frozen).") var trainableLayers = TrainableLayers.all
    @Option(help: "The older spelling of --trainable-layers lora: true trains LoRA adapters.") var lora = false
    @Option(help: "true: activation checkpointing, each block recomputed in the backward pass (far less memory, about one more forward pass; same numbers).") var gradientCheckpointing = false
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe); when given, a sample response is printed after each epoch.") var vocab: Path?

    var settings: InstructSettings {
        var s = InstructSettings()
        s.initScheme = initScheme
        common.apply(to: &s, model: model, epochs: epochs, evalFreq: evalFreq)
        s.allowedMaxLength = allowedMaxLength
        s.maskInstructions = maskInstructions
        s.trainableLayers = lora ? .lora : trainableLayers
        s.loraRank = common.loraRank
        s.loraAlpha = common.loraAlpha
        s.quantizeBase = common.quantizeBase
        s.gradientCheckpointing = gradientCheckpointing
        return s
    }

    func run() throws {
        var o = InstructTrainOptions(prepared: prepared.url, output: out.url, settings: settings)
        o.vocabDirectory = vocab?.url
        o.resume = try common.resumeMode()
        InterruptFlag.installSIGINTHandler()
        try runAsJob(common) { parallel, console in
            o.parallel = parallel
            let result = try InstructTrainStage.run(o, progress: console?.callback ?? silentProgress)
            guard let console else { return }
            try finishRun(result.outcome, out: out, console: console) {
                let stats = result.manifest?.stats ?? [:]
                func loss(_ k: String) -> String { stats[k]?.doubleValue.map { String(format: "%.3f", $0) } ?? "-" }
                let perStep = stats["seconds_per_step_this_process"]?.doubleValue.map { String(format: "%.2fs/step", $0) } ?? "no step in this process"
                return String(format: "trained %d steps (%d examples) in %.1fs (%@); train loss %@ -> %@, validation loss %@ -> %@",
                              result.outcome.steps, result.outcome.examplesSeen, result.outcome.elapsedSeconds, perStep,
                              loss("first_train_loss"), loss("final_train_loss"), loss("first_val_loss"), loss("final_val_loss"))
            }
        }
    }
}

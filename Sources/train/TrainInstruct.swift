import ArgumentParser
import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Weights
import Instruct
import TrainingKit

/// `train instruct`: instruction fine-tuning of GPT-2 on the rows of `prepare instruct`
/// (chapter 7 of the book). See docs/instruct.md.
struct TrainInstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct",
        abstract: "Instruction fine-tuning of GPT-2 (all parameters, causal-LM loss) on prepared instruction rows (chapter 7).",
        discussion: "Writes model.safetensors, log.jsonl, state (for --resume) and manifest.json into --out. Ctrl-C saves the state and stops; `train instruct --resume` with the same options continues exactly.")

    @Option(help: "Output directory of `prepare instruct`.") var prepared = "data/instruct"
    @Option(help: "Output directory.") var out = "data/instruct-train"
    @Option(help: "Model size (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, 124M, ...) or a JSON config file.") var model = "gpt2-medium"
    @OptionGroup var common: CommonTrainOptions
    @Option(name: .customLong("init"), help: "With --weights random: gpt2 (GPT-2's N(0, 0.02) scheme, initial loss near ln 50257) or torch (PyTorch's module defaults, as the book's GPTModel; with the tied head the loss starts in the hundreds).") var initScheme = "gpt2"
    @Option(help: "Epochs.") var epochs = 2
    @Option(help: "Evaluate losses every this many steps.") var evalFreq = 5
    @Option(help: "The collate function's allowed_max_length (rows are cut to it).") var allowedMaxLength = 1024
    @Option(help: "true: the loss covers only the responses (exercise 7.2).") var maskInstructions = false
    @Option(help: "true: LoRA (appendix E): freeze every parameter, train adapters on every Linear layer.") var lora = false
    @OptionGroup var loraOptions: LoRAOptions
    @Option(help: "Stop after this many steps in total and write the outputs (a shortened run; 0: no limit).") var maxSteps = 0
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe); when given, a sample response is printed after each epoch.") var vocab: String?

    func run() throws {
        var s = InstructSettings()
        s.model = model
        s.weights = common.weights
        s.weightsFile = common.weightsFile
        s.initScheme = try InitScheme.parse(initScheme, location: "--init")
        s.seed = common.seed
        s.learningRate = common.lr
        s.weightDecay = common.weightDecay
        s.epochs = epochs
        s.batchSize = common.batchSize
        s.evalFreq = evalFreq
        s.evalIter = common.evalIter
        s.saveEvery = common.saveEvery
        s.allowedMaxLength = allowedMaxLength
        s.maskInstructions = maskInstructions
        s.lora = lora
        s.loraRank = loraOptions.loraRank
        s.loraAlpha = loraOptions.loraAlpha
        s.maxSteps = maxSteps > 0 ? maxSteps : nil
        var o = InstructTrainOptions(prepared: URL(fileURLWithPath: prepared), output: URL(fileURLWithPath: out), settings: s)
        o.vocabDirectory = vocab.map { URL(fileURLWithPath: $0) }
        o.resume = try common.resumeMode()
        InterruptFlag.installSIGINTHandler()
        let reporter = ConsoleReporter()
        let result = try InstructTrainStage.run(o, reporter: reporter)
        let outcome = result.outcome
        if outcome.interrupted {
            reporter.note("interrupted after step \(outcome.steps): state saved to \(out)/state; continue with the same options and --resume")
            throw ExitCode(130)
        }
        let stats = result.manifest?.stats ?? [:]
        func loss(_ k: String) -> String { stats[k]?.doubleValue.map { String(format: "%.3f", $0) } ?? "-" }
        let perStep = stats["seconds_per_step_this_process"]?.doubleValue.map { String(format: "%.2fs/step", $0) } ?? "no step in this process"
        reporter.note(String(format: "trained %d steps (%d examples) in %.1fs (%@); train loss %@ -> %@, validation loss %@ -> %@",
                             outcome.steps, outcome.examplesSeen, outcome.elapsedSeconds, perStep,
                             loss("first_train_loss"), loss("final_train_loss"), loss("first_val_loss"), loss("final_val_loss")))
        reporter.note("wrote \(out)/model.safetensors, log.jsonl, state, manifest.json")
    }
}

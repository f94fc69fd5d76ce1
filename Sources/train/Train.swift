import ArgumentParser
import ArtifactKit
import Classification
import Foundation
import GPT2
import Instruct
import TrainingKit

/// `train`: fine-tunes GPT-2 as a classifier on the shards of `prepare classification`
/// (chapter 6 of the book). See docs/train-evaluate.md.
@main
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune GPT-2: as a classifier (`train classifier`, the default; chapter 6) or on instructions (`train instruct`; chapter 7).",
        subcommands: [TrainClassifier.self, TrainInstruct.self], defaultSubcommand: TrainClassifier.self)
}

/// `train classifier` (the default subcommand, so plain `train --prepared ...` runs it).
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Fine-tune GPT-2 with a classification head on prepared shards (chapter 6).",
        discussion: "Writes model.safetensors, log.jsonl, state (for --resume) and manifest.json into --out. Ctrl-C saves the state and stops; `train --resume` with the same options continues exactly.")

    @Option(help: "Output directory of `prepare classification`.") var prepared = "data/prepared"
    @Option(help: "Output directory.") var out = "data/train"
    @Option(help: "Model size (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, 124M, ...) or a JSON config file.") var model = "gpt2-small"
    @OptionGroup var common: CommonTrainOptions
    @Option(help: "last_layer | last_block | last_two_blocks | all | lora (appendix E: adapters on every Linear, all else frozen).") var trainableLayers = "last_block"
    @Option(help: "last | first | flexible (last real token of each row).") var tokenPosition = "last"
    @Option(help: "true: mean of the final hidden states over each row's real tokens.") var averageEmbeddings = false
    @Option(help: "Epochs.") var epochs = 5
    @Option(help: "Evaluate losses every this many steps.") var evalFreq = 50
    @Option(help: "Expected number of classes; an error when the shards' labels say otherwise.") var numClasses: Int?
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe) to check against the shards' manifest.") var vocab: String?
    @Flag(help: "Recompute the frozen layers every step instead of caching their output (slower, same result).") var noCache = false
    @Flag(help: "Run every batch at the full padded length (slower, same result).") var noTrim = false
    @OptionGroup var lora: LoRAOptions

    func run() throws {
        var s = ClassifierSettings()
        s.model = model
        s.weights = common.weights
        s.weightsFile = common.weightsFile
        s.seed = common.seed
        s.trainableLayers = try TrainableLayers.parse(trainableLayers)
        s.pooling = Pooling(position: try TokenPosition.parse(tokenPosition), averageEmbeddings: averageEmbeddings)
        s.learningRate = common.lr
        s.weightDecay = common.weightDecay
        s.epochs = epochs
        s.batchSize = common.batchSize
        s.evalFreq = evalFreq
        s.evalIter = common.evalIter
        s.saveEvery = common.saveEvery
        s.cacheFrozenTrunk = !noCache
        s.trimBatches = !noTrim
        s.loraRank = lora.loraRank
        s.loraAlpha = lora.loraAlpha

        var o = ClassifierTrainOptions(prepared: URL(fileURLWithPath: prepared), output: URL(fileURLWithPath: out), settings: s)
        o.numClasses = numClasses
        o.vocabDirectory = vocab.map { URL(fileURLWithPath: $0) }
        o.resume = try common.resumeMode()
        InterruptFlag.installSIGINTHandler()
        let reporter = ConsoleReporter()
        let result = try ClassifierTrainStage.run(o, makeBackend: { try GPT2Backend(layout: $0, parameters: $1) }, reporter: reporter)
        let outcome = result.outcome
        if outcome.interrupted {
            reporter.note("interrupted after step \(outcome.steps): state saved to \(out)/state; continue with the same options and --resume")
            throw ExitCode(130)
        }
        let stats = result.manifest?.stats ?? [:]
        func pct(_ k: String) -> String { stats[k]?.doubleValue.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
        reporter.note(String(format: "trained %d steps (%d examples) in %.1fs; last epoch: training accuracy %@, validation accuracy %@",
                             outcome.steps, outcome.examplesSeen, outcome.elapsedSeconds, pct("final_train_accuracy"), pct("final_val_accuracy")))
        reporter.note("wrote \(out)/model.safetensors, log.jsonl, state, manifest.json")
    }
}

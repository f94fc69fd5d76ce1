import ArgumentParser
import ArtifactKit
import Classification
import Foundation
import Instruct
import ToolSupport
import TrainingKit

/// `train`: fine-tunes GPT-2 as a classifier (chapter 6, the default subcommand) or on
/// instructions (chapter 7). See docs/train-evaluate.md and docs/instruct.md.
@main
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune GPT-2: as a classifier (`train classifier`, the default; chapter 6) or on instructions (`train instruct`; chapter 7).",
        subcommands: [TrainClassifier.self, TrainInstruct.self], defaultSubcommand: TrainClassifier.self)

    static func main() { mainTranslatingErrors() }
}

/// `train classifier` (the default subcommand, so plain `train --prepared ...` runs it).
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Fine-tune GPT-2 with a classification head on prepared shards (chapter 6).",
        discussion: "Writes model.safetensors, log.jsonl, state (for --resume) and manifest.json into --out. Ctrl-C saves the state and stops; `train --resume` with the same options continues exactly.")

    @Option(help: "Output directory of `prepare classification`.") var prepared: Path = "data/prepared"
    @Option(help: "Output directory.") var out: Path = "data/train"
    @Option(help: "Model size (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, 124M, ...) or a JSON config file.") var model = "gpt2-small"
    @OptionGroup var common: CommonTrainOptions
    @Option(help: "Which parameters train (lora, appendix E: adapters on every Linear, all else frozen).") var trainableLayers = TrainableLayers.lastBlock
    @Option(help: "Which position the head reads (flexible: the last real token of each row).") var tokenPosition = TokenPosition.last
    @Option(help: "true: mean of the final hidden states over each row's real tokens.") var averageEmbeddings = false
    @Option(help: "Epochs.") var epochs = 5
    @Option(help: "Evaluate losses every this many steps.") var evalFreq = 50
    @Option(help: "What --save-best and --early-stopping-patience follow: loss (validation loss of each evaluation, lower is better) or accuracy (validation accuracy of each epoch end, higher is better).") var bestMetric = BestMetric.loss
    @Option(help: "Expected number of classes; an error when the shards' labels say otherwise.") var numClasses: Int?
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe) to check against the shards' manifest.") var vocab: Path?
    @Flag(help: "Recompute the frozen layers every step instead of caching their output (slower, same result).") var noCache = false
    @Flag(help: "Run every batch at the full padded length (slower, same result).") var noTrim = false
    @Option(help: "GiB the cached frozen-layer states may take (default: half the machine's memory); over it the frozen layers run for every batch (same result, slower).") var frozenMemoryBudget: Double?

    var settings: ClassifierSettings {
        var s = ClassifierSettings()
        s.controls.bestMetric = bestMetric
        common.apply(to: &s, model: model, epochs: epochs, evalFreq: evalFreq)
        s.trainableLayers = trainableLayers
        s.pooling = Pooling(position: tokenPosition, averageEmbeddings: averageEmbeddings)
        s.cacheFrozenTrunk = !noCache
        s.trimBatches = !noTrim
        s.frozenMemoryBudget = frozenMemoryBudget.map { Int($0 * 1_073_741_824) }
        s.loraRank = common.loraRank
        s.loraAlpha = common.loraAlpha
        s.quantizeBase = common.quantizeBase
        return s
    }

    func run() throws {
        var o = ClassifierTrainOptions(prepared: prepared.url, output: out.url, settings: settings)
        o.numClasses = numClasses
        o.vocabDirectory = vocab?.url
        o.resume = try common.resumeMode()
        InterruptFlag.installSIGINTHandler()
        try runAsJob(common) { parallel, console in
            o.parallel = parallel
            let result = try ClassifierTrainStage.run(o, makeBackend: { try GPT2Backend(layout: $0, parameters: $1) },
                                                      progress: console?.callback ?? silentProgress)
            guard let console else { return }
            try finishRun(result.outcome, out: out, console: console) {
            let stats = result.manifest?.stats ?? [:]
            func pct(_ k: String) -> String { stats[k]?.doubleValue.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
            return String(format: "trained %d steps (%d examples) in %.1fs; last epoch: training accuracy %@, validation accuracy %@",
                          result.outcome.steps, result.outcome.examplesSeen, result.outcome.elapsedSeconds,
                          pct("final_train_accuracy"), pct("final_val_accuracy"))
            }
        }
    }
}

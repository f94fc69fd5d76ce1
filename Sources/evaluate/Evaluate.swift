import ArgumentParser
import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Tokenizer
import ToolSupport
import TrainingKit

/// `evaluate`: metrics, predictions and plots of a trained classifier (`evaluate report`, the
/// default), the predicted class of texts (`evaluate classify`), or the instruction model's
/// evaluation (`evaluate instruct`). See docs/train-evaluate.md and docs/instruct.md.
@main
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a classifier trained by `train` (`evaluate report`, the default), classify texts with it (`evaluate classify`), or evaluate an instruction-tuned model (`evaluate instruct`).",
        subcommands: [Report.self, Classify.self, EvaluateInstruct.self], defaultSubcommand: Report.self)

    static func main() { mainTranslatingErrors() }
}

/// The trained classifier and the prepared data both subcommands read.
struct ClassifierInputs: ParsableArguments {
    @Option(help: "Output directory of `train`.") var model: Path = "data/train"
    @Option(help: "Output directory of `prepare classification`.") var prepared: Path = "data/prepared"
}

/// The production backend of the classifier (GPT-2 on OpenBLAS).
let gpt2Backend: (ParameterLayout, [Float]) throws -> ClassifierBackend = { try GPT2Backend(layout: $0, parameters: $1) }

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, accuracy, N x N confusion matrix, per-class precision, recall and F1 (macro and weighted averages) on the full train, validation and test splits; test predictions; plots.")

    @OptionGroup var inputs: ClassifierInputs
    @Option(help: "Output directory.") var out: Path = "data/eval"
    @Option(help: "Batch size of the book-style loss (mean of batch means).") var batchSize = 8

    func run() throws {
        var o = ClassifierEvaluateOptions(model: inputs.model.url, prepared: inputs.prepared.url, output: out.url)
        o.batchSize = batchSize
        let console = ConsoleProgress()
        o.progress = console.callback
        let r = try ClassifierEvaluateStage.run(o, makeBackend: gpt2Backend)
        print(SplitMetrics.report(r.metrics))
        if let why = r.pngSkipped { FileHandle.standardError.write(Data("note: \(why)\n".utf8)) }
        print("wrote \(out)/" + r.files.joined(separator: ", "))
        console.notePeakMemory()
    }
}

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the predicted class name and its probability for each text (arguments, or lines of stdin).")

    @OptionGroup var inputs: ClassifierInputs
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe).") var vocab: Path = "data/raw/gpt2"
    @Argument(help: "Texts to classify; without any, each line of stdin is one text.") var texts: [String] = []

    func run() throws {
        // The tokenizer is checked against the prepared data's manifest when that is there.
        if FileManager.default.fileExists(atPath: inputs.prepared.appending(Manifest.fileName)) {
            try ClassificationDataset.load(from: inputs.prepared.url, splits: []).checkTokenizer(vocabDirectory: vocab.url)
        }
        let tokenizer = try GPT2BPETokenizer(directory: vocab.url)
        let classifier = try TextClassifier(modelDirectory: inputs.model.url, makeBackend: gpt2Backend)
        let vocabSize = classifier.checkpoint.layout.config.vocabSize
        guard tokenizer.vocabularySize <= vocabSize else {
            throw PipelineError("the tokenizer has \(tokenizer.vocabularySize) tokens, the model only \(vocabSize)",
                                location: vocab.text, hint: "use the GPT-2 vocabulary the model was trained with")
        }
        var lines = texts
        if lines.isEmpty { while let line = readLine() { lines.append(line) } }
        guard !lines.isEmpty else { throw PipelineError("no text given (pass texts as arguments or lines on stdin)") }
        var failures = 0
        for (i, text) in lines.enumerated() {
            do {
                let p = try classifier.probabilities(tokens: tokenizer.encodeOrdinary(text))
                let best = argmax(p)
                print("\(classifier.checkpoint.labelNames[best])\t\(String(format: "%.4f", p[best]))")
            } catch let e as PipelineError {
                // One bad text does not stop the others.
                failures += 1
                let which = texts.isEmpty ? "stdin line \(i + 1)" : "text \(i + 1)"
                FileHandle.standardError.write(Data("Error: \(which): \(e.description)\n".utf8))
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }
}

import ArgumentParser
import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import Classification
import Instruct

/// `evaluate`: metrics, predictions and plots of a trained classifier (`evaluate report`, the
/// default), or spam / not spam for texts (`evaluate classify`). See docs/train-evaluate.md.
@main
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a classifier trained by `train` (`evaluate report`, the default), classify texts with it (`evaluate classify`), or evaluate an instruction-tuned model (`evaluate instruct`).",
        subcommands: [Report.self, Classify.self, EvaluateInstruct.self], defaultSubcommand: Report.self)
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, accuracy, confusion matrix, precision, recall and F1 on the full train, validation and test splits; test predictions; plots.")

    @Option(help: "Output directory of `train`.") var model = "data/train"
    @Option(help: "Output directory of `prepare classification`.") var prepared = "data/prepared"
    @Option(help: "Output directory.") var out = "data/eval"
    @Option(help: "Batch size of the book-style loss (mean of batch means).") var batchSize = 8

    func run() throws {
        var o = ClassifierEvaluateOptions(model: URL(fileURLWithPath: model), prepared: URL(fileURLWithPath: prepared), output: URL(fileURLWithPath: out))
        o.batchSize = batchSize
        o.note = { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
        let r = try ClassifierEvaluateStage.run(o, makeBackend: { try GPT2Backend(layout: $0, parameters: $1) })
        for name in ["train", "validation", "test"] {
            guard let m = r.metrics[name] else { continue }
            let label = name.padding(toLength: 11, withPad: " ", startingAt: 0)
            print(label + String(format: "accuracy %6.2f%%  loss %.3f  precision %.3f  recall %.3f  F1 %.3f  (%d rows)",
                                 m.accuracy * 100, m.loss, m.precision, m.recall, m.f1, m.rows))
        }
        if let why = r.pngSkipped { FileHandle.standardError.write(Data("note: \(why)\n".utf8)) }
        print("wrote \(out)/" + r.files.joined(separator: ", "))
    }
}

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print \"spam\" or \"not spam\" and the spam probability for each text (arguments, or lines of stdin).")

    @Option(help: "Output directory of `train`.") var model = "data/train"
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe).") var vocab = "data/raw/gpt2"
    @Option(help: "Output directory of `prepare classification`, to check the tokenizer files against (skipped when absent).") var prepared = "data/prepared"
    @Argument(help: "Texts to classify; without any, each line of stdin is one text.") var texts: [String] = []

    func run() throws {
        let vocabURL = URL(fileURLWithPath: vocab)
        let preparedURL = URL(fileURLWithPath: prepared)
        if FileManager.default.fileExists(atPath: preparedURL.appendingPathComponent("manifest.json").path) {
            try ClassificationDataset.load(from: preparedURL, splits: []).checkTokenizer(vocabDirectory: vocabURL)
        }
        let tokenizer = try GPT2BPETokenizer(directory: vocabURL)
        let classifier = try TextClassifier(modelDirectory: URL(fileURLWithPath: model),
                                            makeBackend: { try GPT2Backend(layout: $0, parameters: $1) })
        guard tokenizer.vocabularySize <= classifier.checkpoint.layout.config.vocabSize else {
            throw PipelineError("the tokenizer has \(tokenizer.vocabularySize) tokens, the model only \(classifier.checkpoint.layout.config.vocabSize)",
                                location: vocab, hint: "use the GPT-2 vocabulary the model was trained with")
        }
        var inputs = texts
        if inputs.isEmpty { while let line = readLine() { inputs.append(line) } }
        guard !inputs.isEmpty else { throw PipelineError("no text given (pass texts as arguments or lines on stdin)") }
        var failures = 0
        for (i, text) in inputs.enumerated() {
            do {
                let p = try classifier.probabilities(tokens: tokenizer.encodeOrdinary(text))
                let spam = p[1]
                print("\(argmax(p) == 1 ? "spam" : "not spam")\t\(String(format: "%.4f", spam))")
            } catch let e as PipelineError {
                failures += 1
                let which = texts.isEmpty ? "stdin line \(i + 1)" : "text \(i + 1)"
                FileHandle.standardError.write(Data("Error: \(which): \(e.description)\n".utf8))
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }
}

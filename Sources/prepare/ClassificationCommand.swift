import ArgumentParser
import ArtifactKit
import Classification
import Instruct
import Foundation
import ToolSupport

/// `prepare classification`: the book's chapter 6 data set (balanced SMS spam, 70/10/20 split,
/// GPT-2 tokens padded to the longest training text).
struct ClassificationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classification",
        abstract: "Balance, split and tokenize the SMS Spam Collection as in chapter 6.",
        discussion: """
        Writes train/validation/test .csv (as pandas' to_csv) and .bin token shards plus \
        manifest.json into --out, replacing the directory only when everything is written.
        """)

    @Option(help: "The SMS Spam Collection TSV (label<TAB>text).")
    var input: Path
    @Option(help: "Directory with the GPT-2 encoder.json and vocab.bpe.")
    var vocab: Path
    @Option(help: "Output directory (replaced as a whole).")
    var out: Path
    @Option(help: "numpy RandomState seed for undersampling and shuffling.")
    var seed: UInt32 = 123
    @Option(help: "Fraction of the balanced rows for training.")
    var trainFrac: Double = 0.7
    @Option(help: "Fraction of the balanced rows for validation (the rest is the test set).")
    var validationFrac: Double = 0.1
    @Option(help: "Sequence length: `longest` (longest training text), `context`, or an integer.")
    var maxLength: String = "longest"
    @Option(help: "The model's context length (used by --max-length context; an upper bound otherwise).")
    var contextLength: Int = 1024
    @Option(help: "Token id used for padding.")
    var padTokenId: Int = 50256

    func run() throws {
        var options = ClassificationPrepareOptions(input: input.url, vocabDirectory: vocab.url, output: out.url)
        options.seed = seed
        options.trainFraction = trainFrac
        options.validationFraction = validationFrac
        options.maxLength = try MaxLengthSetting(parsing: maxLength)
        options.contextLength = contextLength
        options.padTokenID = padTokenId
        let manifest = try ClassificationPreparer.run(options)
        let s = manifest.stats
        let splits = ["train", "validation", "test"].map { name -> String in
            let p = s["splits"]?[name]
            return "\(name) \(p?["rows"] ?? 0) (ham \(p?["ham"] ?? 0), spam \(p?["spam"] ?? 0))"
        }
        print("""
        read \(s["total_rows"] ?? 0) rows (ham \(s["ham_rows"] ?? 0), spam \(s["spam_rows"] ?? 0)) from \(input)
        balanced to \(s["balanced_ham"] ?? 0) ham + \(s["balanced_spam"] ?? 0) spam (seed \(seed))
        split: \(splits.joined(separator: ", "))
        sequence length \(s["max_length"] ?? 0) tokens (pad id \(padTokenId)), truncated texts: \(s["truncated"] ?? 0)
        wrote \(out)/{train,validation,test}.{csv,bin} and \(out)/manifest.json
        """)
    }
}

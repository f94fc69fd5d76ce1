import ArgumentParser
import ArtifactKit
import Classification
import Instruct
import Foundation
import ToolSupport

extension ClassificationFileFormat: ExpressibleByArgument {}
extension BalanceMode: ExpressibleByArgument {}
extension ColumnRef: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `prepare classification`: a labelled-text file (by default the book's chapter 6 data set:
/// balanced SMS spam, 70/10/20 split, GPT-2 tokens padded to the longest training text).
struct ClassificationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classification",
        abstract: "Balance, split and tokenize a labelled-text file (by default the SMS Spam Collection, as in chapter 6).",
        discussion: """
        Reads CSV, TSV or JSONL (--format, else the extension); the text and label columns by \
        header name or 0-based index. Writes train/validation/test .csv (as pandas' to_csv) and \
        .bin token shards plus manifest.json into --out, replacing the directory only when \
        everything is written.
        """)

    @Option(help: "The labelled-text file (default layout: the SMS Spam Collection TSV, label<TAB>text, no header).")
    var input: Path?
    @Option(help: "Given splits instead of --input: the train file (with --validation and --test; read like --input).")
    var train: Path?
    @Option(help: "The validation file (with --train).")
    var validation: Path?
    @Option(help: "The test file (with --train).")
    var test: Path?
    @Option(help: "A column whose values (train, validation/val/dev, test) give each row's split, instead of --train-frac.")
    var splitColumn: ColumnRef?
    @Option(help: "Directory with the GPT-2 encoder.json and vocab.bpe.")
    var vocab: Path
    @Option(help: "Output directory (replaced as a whole).")
    var out: Path
    @Option(help: "csv | tsv | jsonl (default: from the extension; no extension is tsv).")
    var format: ClassificationFileFormat?
    @Option(help: "The text column: a header name (the first row is then the header) or a 0-based index (headerless). Default 1; JSONL key `text`.")
    var textColumn: ColumnRef?
    @Option(help: "The label column, as --text-column. Default 0; JSONL key `label`.")
    var labelColumn: ColumnRef?
    @Option(help: "Class names in id order, comma-separated (a label outside them is an error). Default: the labels found, sorted (numerically if all are integers).")
    var labels: String?
    @Option(help: "undersample (every class down to the smallest, as the book) | none.")
    var balance: BalanceMode = .undersample
    @Option(help: "true: cut each class by the fractions separately, so every split has the same class proportions.")
    var stratify = false
    @Option(help: "Keep a seeded random subset of this many rows first (0: every row).")
    var limit = 0
    @Option(help: "numpy RandomState seed for the subset, undersampling and shuffling.")
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

    /// `--input`, or all three of `--train`, `--validation`, `--test`.
    func inputFiles() throws -> (input: Path, splits: [Path]?) {
        let given = [train, validation, test].compactMap { $0 }
        switch (input, given.count) {
        case (let input?, 0): return (input, nil)
        case (nil, 3): return (given[0], given)
        default:
            throw PipelineError("give --input FILE, or all three of --train FILE --validation FILE --test FILE (not both)",
                                location: "--input / --train", hint: "then rerun `prepare classification`")
        }
    }

    func run() throws {
        let (input, splits) = try inputFiles()
        var options = ClassificationPrepareOptions(input: input.url, vocabDirectory: vocab.url, output: out.url)
        options.splitFiles = splits?.map(\.url)
        options.seed = seed
        options.trainFraction = trainFrac
        options.validationFraction = validationFrac
        options.maxLength = try MaxLengthSetting(parsing: maxLength)
        options.contextLength = contextLength
        options.padTokenID = padTokenId
        options.inputFormat = ClassificationInputOptions(format: format, textColumn: textColumn, labelColumn: labelColumn,
                                                         labelNames: labels.map { $0.split(separator: ",").map(String.init) },
                                                         splitColumn: splitColumn)
        options.balance = balance
        options.stratify = stratify
        options.limit = limit > 0 ? limit : nil
        let manifest = try ClassificationPreparer.run(options)
        print(ClassificationPreparer.summary(manifest, input: input.description, out: out.description))
    }
}

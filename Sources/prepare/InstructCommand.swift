import ArgumentParser
import ArtifactKit
import Classification
import Instruct
import Foundation
import GPT2Tokenizer
import ToolSupport

extension PromptStyle: ExpressibleByArgument {}
extension InstructionShape: ExpressibleByArgument {}
extension InstructionFileFormat: ExpressibleByArgument {}

/// `prepare instruct`: instruction data (Alpaca, prompt-completion or chat; JSON or JSONL) ->
/// token shards + split records + manifest. See docs/instruct-data.md.
struct InstructCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct",
        abstract: "Split, format and tokenize instruction data (chapter 7) into token shards.",
        discussion: """
            Reads a JSON list or JSONL file of Alpaca {instruction, input, output}, {prompt, \
            completion} or chat {messages: [{role, content}]} records (the shape is detected from \
            the keys), splits it in file order (train = int(train-frac * n), test = \
            int(test-frac * n), validation = the rest) or takes the splits from --train, \
            --validation and --test, renders each record with the template and encodes it with \
            GPT-2 BPE. Writes train.bin, validation.bin, test.bin, the records of each split as \
            train.json, validation.json, test.json, and manifest.json into --out (replaced as a whole).
            """)

    @Option(help: "The instruction data, split by --train-frac/--test-frac (default data/raw/instruction-data.json; not with --train).") var input: Path?
    @Option(help: "The training split as its own file (with --validation, and optionally --test, instead of --input).") var train: Path?
    @Option(help: "The validation split as its own file (with --train).") var validation: Path?
    @Option(help: "The test split as its own file (with --train; without it the test split is empty).") var test: Path?
    @Option(help: "json (one list) or jsonl (one object per line); default: from the extension (.json, .jsonl, .ndjson).") var format: InstructionFileFormat?
    @Option(help: "alpaca, prompt-completion or chat; default: detected from the first record's keys (every record must then have that shape).") var shape: InstructionShape?

    @Option(name: .customLong("field"), help: ArgumentHelp(
        "The file's key for a field: canonical=key, e.g. --field instruction=question (repeatable; several comma-separated also work).",
        discussion: "Fields: instruction, input, output, prompt, completion, messages, role, content."))
    var fields: [String] = []

    @Option(help: "Folder with the GPT-2 encoder.json and vocab.bpe.")
    var vocab: Path = "data/raw/gpt2"

    @Option(help: "Output folder.")
    var out: Path = "data/instruct"

    @Option(name: [.customLong("template"), .customLong("style")],
            help: "Prompt template: alpaca (the chapter's), phi3 (exercise 7.1) or chatml. --style is the older name.")
    var template: PromptStyle = .alpaca

    @Option(help: "Fraction of entries, from the start of the file, for training (default 0.85; not with --train).")
    var trainFrac: Double?

    @Option(help: "Fraction of entries after the training ones for the test set; validation gets the rest (default 0.1; not with --train).")
    var testFrac: Double?

    @Option(help: "Rows longer than this many tokens are cut by the batch collation; they are counted in the manifest.")
    var allowedMaxLength: Int = 1024

    /// The splits: fractions of --input, or the given files.
    func source() throws -> InstructionSource {
        guard let train else {
            guard validation == nil, test == nil else {
                throw PipelineError("--validation and --test need --train", location: "prepare instruct",
                                    hint: "give all splits as files (--train, --validation, optionally --test), or one --input split by fractions")
            }
            return .fractions(input: (input ?? "data/raw/instruction-data.json").url, trainFrac: trainFrac ?? 0.85, testFrac: testFrac ?? 0.1)
        }
        guard input == nil, trainFrac == nil, testFrac == nil else {
            throw PipelineError("--train takes the splits from files; --input, --train-frac and --test-frac split one file", location: "prepare instruct",
                                hint: "use either --train/--validation[/--test] or --input with fractions")
        }
        guard let validation else {
            throw PipelineError("--train needs --validation (the validation split's file)", location: "prepare instruct",
                                hint: "add --validation FILE (and optionally --test FILE)")
        }
        return .files(train: train.url, validation: validation.url, test: test?.url)
    }

    func run() throws {
        let reading = InstructionReadOptions(format: format, shape: shape, fields: try InstructionFields(parsing: fields))
        let options = InstructionPrepareOptions(source: try source(), vocabDirectory: vocab.url, output: out.url, style: template,
                                                reading: reading, allowedMaxLength: allowedMaxLength)
        print(instructionSummary(try prepareInstructionDataset(options), out: out.text))
    }
}

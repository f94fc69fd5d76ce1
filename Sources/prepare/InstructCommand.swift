import ArgumentParser
import ArtifactKit
import Classification
import Instruct
import Foundation
import GPT2Tokenizer
import ToolSupport

extension PromptStyle: ExpressibleByArgument {}

/// `prepare instruct`: chapter 7's instruction data -> token shards + split entries + manifest.
struct InstructCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct",
        abstract: "Split, format and tokenize instruction data (chapter 7) into token shards.",
        discussion: """
            Reads a JSON list of {instruction, input, output} entries, splits it in file order \
            (train = int(train-frac * n), test = int(test-frac * n), validation = the rest), formats \
            each entry with the prompt style and encodes it with GPT-2 BPE. Writes train.bin, \
            validation.bin, test.bin, the entries of each split as train.json, validation.json, \
            test.json, and manifest.json into --out (replaced as a whole).
            """)

    @Option(help: "The instruction data (a JSON list of {instruction, input, output}).")
    var input: Path = "data/raw/instruction-data.json"

    @Option(help: "Folder with the GPT-2 encoder.json and vocab.bpe.")
    var vocab: Path = "data/raw/gpt2"

    @Option(help: "Output folder.")
    var out: Path = "data/instruct"

    @Option(help: "Prompt template: alpaca (the chapter's) or phi3 (exercise 7.1).")
    var style: PromptStyle = .alpaca

    @Option(help: "Fraction of entries, from the start of the file, for training.")
    var trainFrac: Double = 0.85

    @Option(help: "Fraction of entries after the training ones for the test set; validation gets the rest.")
    var testFrac: Double = 0.1

    @Option(help: "Rows longer than this many tokens are cut by the batch collation; they are counted in the manifest.")
    var allowedMaxLength: Int = 1024

    func run() throws {
        let options = InstructionPrepareOptions(
            input: input.url, vocabDirectory: vocab.url, output: out.url, style: style,
            trainFrac: trainFrac, testFrac: testFrac, allowedMaxLength: allowedMaxLength)
        print(instructionSummary(try prepareInstructionDataset(options), out: out.text))
    }
}

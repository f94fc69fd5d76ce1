import ArgumentParser
import ArtifactKit
import Foundation
import GPT2Tokenizer
import ToolSupport

/// `prepare tokenize`: GPT-2 token ids for texts given as JSON lines, for checking the tokenizer
/// by hand or against tiktoken.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode JSON-lines texts (stdin) as GPT-2 token ids (stdout, one JSON array per line).",
        discussion: """
            Each input line must be one JSON string, e.g. "Hello, world". Each output line holds \
            the ids of the same input line, e.g. [15496,11,995]; they equal tiktoken's gpt2 \
            encoding. Nothing is written unless every line is valid.

              echo '"Hello, world"' | prepare tokenize --vocab data/raw/gpt2
            """)

    @Option(help: "Directory holding encoder.json and vocab.bpe (written by `fetch`).")
    var vocab: Path

    @Flag(help: "Encode <|endoftext|> as id 50256 (default: a text containing it is an error).")
    var allowSpecial = false

    @Flag(help: "Encode <|endoftext|> as ordinary text (tiktoken's encode_ordinary).")
    var ordinary = false

    @Option(help: "Worker threads (default: the number of cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if allowSpecial && ordinary { throw ValidationError("--allow-special and --ordinary exclude each other") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let tokenizer = try GPT2BPETokenizer(directory: vocab.url)
        let input = FileHandle.standardInput.readDataToEndOfFile()
        let output = try JSONLinesTokenization.tokenize(
            input, source: "stdin", with: tokenizer,
            specialTokens: allowSpecial ? .allow : (ordinary ? .ordinary : .disallow), threads: threads)
        FileHandle.standardOutput.write(output)
    }
}

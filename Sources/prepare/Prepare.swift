import ArgumentParser
import ToolSupport

/// `prepare`: turns fetched raw files into the data artifacts the trainer reads.
@main
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Balance, split and tokenize data sets into versioned binary shards.",
        subcommands: [ClassificationCommand.self, InstructCommand.self, TokenizeCommand.self])

    static func main() { mainTranslatingErrors() }
}

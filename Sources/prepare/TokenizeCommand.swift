import ArgumentParser

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "(in progress)")
    func run() throws { throw ValidationError("prepare tokenize is not built yet") }
}

import ArgumentParser

struct InstructCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "instruct", abstract: "(in progress)")
    func run() throws { throw ValidationError("prepare instruct is not built yet") }
}

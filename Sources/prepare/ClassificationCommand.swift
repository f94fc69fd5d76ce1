import ArgumentParser

struct ClassificationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "classification", abstract: "(in progress)")
    func run() throws { throw ValidationError("prepare classification is not built yet") }
}

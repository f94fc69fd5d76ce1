import ArgumentParser

@main
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prepare")
    func run() throws { throw ValidationError("not built yet") }
}

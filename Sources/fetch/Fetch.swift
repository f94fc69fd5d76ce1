import ArgumentParser

@main
struct FetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fetch")
    func run() throws { throw ValidationError("not built yet") }
}

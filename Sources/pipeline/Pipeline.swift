import ArgumentParser

@main
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pipeline")
    func run() throws { throw ValidationError("not built yet") }
}

import ArgumentParser
import Training

@main
struct Evaluate: ParsableCommand {
    func run() throws {}
}

import ArgumentParser
import Training

@main
struct Train: ParsableCommand {
    func run() throws {}
}

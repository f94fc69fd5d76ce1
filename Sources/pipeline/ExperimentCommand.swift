import ArgumentParser
import ArtifactKit
import Foundation
import PipelineRunner
import ToolSupport

/// `pipeline experiment`: the book's table of chapter-6 settings as named presets
/// (experiments/ch06.yaml), each run in its own directory, and a summary table.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run named param presets (the book's table of experiments) in their own run directories and summarise them.",
        discussion: "See docs/pipeline.md \"Experiments\".",
        subcommands: [ExperimentList.self, ExperimentRun.self, ExperimentSummaryCommand.self])
}

struct ExperimentOptions: ParsableArguments {
    @Option(name: [.customShort("e"), .customLong("experiments")], help: "The experiments file.",
            completion: .file(extensions: ["yaml", "yml"]))
    var file: Path = "experiments/ch06.yaml"

    @Option(help: "Directory of the run directories (default: the file's `runs`).", completion: .directory)
    var runs: Path?

    func load() throws -> ExperimentFile { try ExperimentFile.load(file.url) }
}

/// An `experiment` subcommand: works on the experiments file of `-e`.
protocol ExperimentFileCommand: ReportingCommand {
    var options: ExperimentOptions { get }
    func execute(_ file: ExperimentFile) throws
}

extension ExperimentFileCommand {
    func execute() throws { try execute(try options.load()) }
}

struct ExperimentList: ExperimentFileCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the presets and their param overrides.")

    @OptionGroup var options: ExperimentOptions

    func execute(_ file: ExperimentFile) throws {
        for p in file.presets {
            print("\(p.name)  [\(p.row.map { "row \($0)" } ?? "extra")]  \(p.settings)")
            print("    " + (p.unsupported.map { "not supported here: \($0)" }
                            ?? (p.overrides.isEmpty ? "(pipeline defaults)" : "--set " + p.overrides.joined(separator: " --set "))))
        }
    }
}

struct ExperimentRun: ExperimentFileCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run presets (or `all` runnable ones), each as `pipeline run` in <runs>/<preset>/; stages already up to date are skipped.")

    @OptionGroup var options: ExperimentOptions

    @Option(name: .customLong("set"), help: ArgumentHelp("An extra param override for every preset (after the preset's own), e.g. --set train.weights=random.", valueName: "key=value"))
    var overrides: [String] = []

    @Argument(help: "Preset names, or `all`.")
    var presets: [String]

    func execute(_ file: ExperimentFile) throws {
        for preset in try file.select(presets) {
            try Experiments.run(file, preset: preset, extra: overrides, runs: options.runs?.url, toolDirectory: toolDirectory, log: printFlushed)
        }
    }
}

struct ExperimentSummaryCommand: ExperimentFileCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "A markdown table of the runs: preset, settings, the metric columns of the file's `summary`, wall time, the book's test accuracy.")

    @OptionGroup var options: ExperimentOptions

    @Flag(help: "Also list presets that have not run (or cannot run here).")
    var all = false

    @Argument(help: "Other run directories to add (pipeline directories with their lock file and the files `summary` reads).",
              completion: .directory)
    var directories: [Path] = []

    func execute(_ file: ExperimentFile) throws {
        print(try ExperimentSummary.table(file, runs: options.runs?.url, extra: directories.map(\.url), includeMissing: all), terminator: "")
    }
}

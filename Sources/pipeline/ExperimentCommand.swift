import ArgumentParser
import ArtifactKit
import Foundation
import PipelineRunner

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
    @Option(name: [.customShort("e"), .customLong("experiments")], help: "The experiments file.")
    var file = "experiments/ch06.yaml"

    @Option(help: "Directory of the run directories (default: the file's `runs`).")
    var runs: String?

    func load() throws -> ExperimentFile { try ExperimentFile.load(URL(fileURLWithPath: file)) }
    var runsURL: URL? { runs.map { URL(fileURLWithPath: $0) } }
}

struct ExperimentList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the presets and their param overrides.")

    @OptionGroup var options: ExperimentOptions

    func run() throws {
        try reportingErrors {
            let file = try options.load()
            for p in file.presets {
                let row = p.row.map { "row \($0)" } ?? "extra"
                print("\(p.name)  [\(row)]  \(p.settings)")
                print("    " + (p.unsupported.map { "not supported here: \($0)" }
                                ?? (p.overrides.isEmpty ? "(pipeline defaults)" : "--set " + p.overrides.joined(separator: " --set "))))
            }
        }
    }
}

struct ExperimentRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run presets (or `all` runnable ones), each as `pipeline run` in <runs>/<preset>/; stages already up to date are skipped.")

    @OptionGroup var options: ExperimentOptions

    @Option(name: .customLong("set"), help: ArgumentHelp("An extra param override for every preset (after the preset's own), e.g. --set train.weights=random.", valueName: "key=value"))
    var overrides: [String] = []

    @Argument(help: "Preset names, or `all`.")
    var presets: [String]

    func run() throws {
        try reportingErrors {
            let file = try options.load()
            let toolDir = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0]))
                .resolvingSymlinksInPath().deletingLastPathComponent()
            for preset in try file.select(presets) {
                try Experiments.run(file, preset: preset, extra: overrides, runs: options.runsURL, toolDirectory: toolDir, log: printFlushed)
            }
        }
    }
}

struct ExperimentSummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "A markdown table of the runs: preset, settings, train/validation/test accuracy, wall time, the book's test accuracy.")

    @OptionGroup var options: ExperimentOptions

    @Flag(help: "Also list presets that have not run (or cannot run here).")
    var all = false

    @Argument(help: "Other run directories to add (pipeline directories with pipeline.lock and data/eval/metrics.json).")
    var directories: [String] = []

    func run() throws {
        try reportingErrors {
            let file = try options.load()
            let rows = ExperimentSummary.rows(file, runs: options.runsURL, extra: directories.map { URL(fileURLWithPath: $0) },
                                              includeMissing: all)
            print(ExperimentSummary.markdown(rows), terminator: "")
        }
    }
}

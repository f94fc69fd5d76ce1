import ArgumentParser
import ArtifactKit
import Foundation
import PipelineRunner
import ToolSupport

@main
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Runs the stages of pipeline.yaml that are stale, DVC style.",
        discussion: "See docs/pipeline.md for the file format, the lock file and examples.",
        subcommands: [RunCommand.self, StatusCommand.self, DagCommand.self, ShowCommand.self, MetricsCommand.self, ValidateCommand.self,
                      ExperimentCommand.self])

    static func main() { mainTranslatingErrors() }
}

/// Options every subcommand that reads a pipeline file shares.
struct FileOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("file")], help: "The pipeline file.", completion: .file(extensions: ["yaml", "yml"]))
    var file: Path = "pipeline.yaml"

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a param for this invocation (a YAML scalar), e.g. --set prepare.seed=7.", valueName: "key=value"))
    var overrides: [String] = []

    func load() throws -> Pipeline {
        try Pipeline.load(url: file.url, overrides: overrides)
    }
}

/// A subcommand whose failed stages print as `error: ...` and exit 1 (its `PipelineError`s do
/// too, through `mainTranslatingErrors`).
protocol ReportingCommand: ParsableCommand {
    func execute() throws
}

extension ReportingCommand {
    func run() throws { try reportingErrors(execute) }
}

/// A subcommand that works on the pipeline file of `-f` with the `--set` overrides.
protocol PipelineFileCommand: ReportingCommand {
    var fileOptions: FileOptions { get }
    func execute(_ pipeline: Pipeline) throws
}

extension PipelineFileCommand {
    func execute() throws { try execute(try fileOptions.load()) }
}

/// Prints a user-facing error to stderr and exits non-zero, without a stack of Swift noise.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as StageFailedError {
        FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
        throw ExitCode(1)
    }
}

func printFlushed(_ line: String) {
    print(line)
    fflush(stdout)
}

/// The directory of this executable: the sibling tools stage commands run first on PATH.
var toolDirectory: URL {
    (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().deletingLastPathComponent()
}

/// The pipeline file options and the stage names of `run` and `status`.
struct StageSelection: ParsableArguments {
    @OptionGroup var file: FileOptions

    @Argument(help: "Stage names (default: all).")
    var stages: [String] = []
}

struct RunCommand: PipelineFileCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the stale stages (or the named ones and their stale upstream) in dependency order.")

    @OptionGroup var selection: StageSelection
    var fileOptions: FileOptions { selection.file }

    @Flag(help: "Run only the named stages, not their upstream.")
    var single = false

    @Flag(help: "Run even if up to date (the named stages, or all).")
    var force = false

    @Flag(help: "Print the exact commands that would run; run nothing.")
    var dry = false

    @Flag(help: "Run the named stages and everything after them (not their upstream).")
    var downstream = false

    func validate() throws {
        if (single || downstream) && selection.stages.isEmpty {
            throw ValidationError("--single and --downstream need at least one stage name")
        }
        if single && downstream {
            throw ValidationError("--single and --downstream cannot be combined")
        }
    }

    func execute(_ pipeline: Pipeline) throws {
        try Runner(pipeline: pipeline, log: printFlushed).run(
            RunOptions(targets: selection.stages, single: single, force: force, dry: dry, downstream: downstream, toolDirectory: toolDirectory))
    }
}

struct StatusCommand: PipelineFileCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show which stages are stale and why (exit code 0 either way).")

    @OptionGroup var selection: StageSelection
    var fileOptions: FileOptions { selection.file }

    @Flag(help: "Machine-readable output.")
    var json = false

    func execute(_ pipeline: Pipeline) throws {
        let statuses = try Runner(pipeline: pipeline).status(targets: selection.stages)
        if json {
            let value: JSONValue = .object([
                "file": .string(pipeline.file.url.path),
                "stages": .array(statuses.map { s in
                    .object(["name": .string(s.name), "stale": .bool(s.isStale), "command": .string(s.command),
                             "reasons": .array(s.reasons.map { r in
                                 .object(["kind": .string(r.kind), "message": .string(r.description)])
                             })])
                }),
            ])
            print(String(decoding: try PrettyJSON.data(value), as: UTF8.self))
            return
        }
        for s in statuses {
            print("\(s.name): " + (s.isStale ? "stale" : "up to date"))
            for r in s.reasons where s.isStale { print("    \(r)") }
        }
        let stale = statuses.filter(\.isStale).count
        print(stale == 0 ? "everything is up to date" : "\(stale) of \(statuses.count) stage(s) stale; `pipeline run` runs them")
    }
}

struct DagCommand: PipelineFileCommand {
    static let configuration = CommandConfiguration(commandName: "dag", abstract: "Print the stage graph.")

    @OptionGroup var fileOptions: FileOptions

    @Flag(help: "Graphviz dot output.")
    var dot = false

    func execute(_ pipeline: Pipeline) throws {
        print(dot ? pipeline.graphDot() : pipeline.graphText())
    }
}

struct ValidateCommand: PipelineFileCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check the pipeline file and exit.")

    @OptionGroup var fileOptions: FileOptions

    func execute(_ pipeline: Pipeline) throws {
        print("\(pipeline.file.url.path): \(pipeline.stages.count) stage(s), OK")
    }
}

struct ShowCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Describe an artifact: a directory (manifest + files), manifest.json, CSV/TSV, JSON, JSONL or a binary artifact.")

    @Argument(help: "The file or directory to show.", completion: .file())
    var path: Path

    @Option(name: .customShort("n"), help: "How many rows / lines / records to show.")
    var rows: Int = 5

    func execute() throws {
        print(try InspectorRegistry.full().inspect(url: path.url, rows: rows))
    }
}

struct MetricsCommand: PipelineFileCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the latest metrics (every metrics.json inside the stages' outs) as tables.")

    @OptionGroup var fileOptions: FileOptions

    func execute(_ pipeline: Pipeline) throws {
        let base = pipeline.file.directory
        var found = 0
        for stage in pipeline.stages {
            for out in stage.outs {
                let url = base.appendingPathComponent(out)
                let file = url.lastPathComponent == "metrics.json" ? url : url.appendingPathComponent("metrics.json")
                guard FileManager.default.fileExists(atPath: file.path) else { continue }
                found += 1
                print("\(stage.name): \(out == file.lastPathComponent ? out : out + "/metrics.json")")
                print(try MetricsTable.render(file))
                print("")
            }
        }
        if found == 0 {
            print("no metrics yet: no stage out holds a metrics.json (run `pipeline run` first)")
        }
    }
}

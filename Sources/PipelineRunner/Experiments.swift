import ArtifactKit
import Foundation
import Yams

/// Named param presets (such as a book's table of experiments) run as separate pipeline runs,
/// each in its own directory, and summarised as one markdown table whose columns the file's
/// `summary:` declares. See docs/pipeline.md "Experiments".
public struct ExperimentFile: Sendable {
    public struct BookResult: Codable, Equatable, Sendable {
        public var train: Double?
        public var validation: Double?
        public var test: Double?
        public var minutes: Double?
    }

    public struct Preset: Codable, Equatable, Sendable {
        public var name: String
        /// The row of the book's table, nil for presets of our own.
        public var row: Int?
        public var settings: String
        /// Param overrides, as `pipeline run --set key=value` takes them (values are YAML scalars).
        public var set: [String: String]?
        /// The book's reported accuracies (percent) and training time.
        public var book: BookResult?
        /// Why this row cannot run here (then `run` refuses it and says so).
        public var unsupported: String?
        public var note: String?

        /// `set` as `key=value` strings in key order.
        public var overrides: [String] { (set ?? [:]).keys.sorted().map { "\($0)=\(set![$0]!)" } }
    }

    struct Contents: Codable {
        var pipeline: String
        var runs: String
        var source: String?
        var presets: [Preset]
        var summary: SummarySpec?
    }

    public let url: URL
    /// The pipeline file every preset runs (a copy of it goes into each run directory).
    public let pipeline: URL
    /// Where run directories go: `<runs>/<preset name>/`.
    public let runs: URL
    public let source: String?
    public let presets: [Preset]
    /// What `experiment summary` shows of a run; nil when the file has no `summary:` (then only
    /// `summary` fails).
    public let summary: SummarySpec?

    public static func load(_ url: URL) throws -> ExperimentFile {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw PipelineError("cannot read the experiments file", location: url.path, hint: "pass an experiments file with -e")
        }
        let c: Contents
        do { c = try YAMLDecoder().decode(Contents.self, from: text) } catch {
            let (path, message) = describeDecodingError(error)
            if path.hasPrefix("summary") {
                throw PipelineError(message, location: url.path, hint: "see the `summary:` keys in docs/pipeline.md \"Experiments\"")
            }
            throw PipelineError("not an experiments file: \(message)", location: url.path,
                                hint: "it needs `pipeline`, `runs` and a list of `presets` (name, settings, set, book); see docs/pipeline.md")
        }
        var seen = Set<String>()
        for p in c.presets {
            guard p.name.range(of: "^[A-Za-z0-9_-]+$", options: .regularExpression) != nil else {
                throw PipelineError("preset name `\(p.name)` may only use letters, digits, `_` and `-` (it names a directory)", location: url.path)
            }
            guard seen.insert(p.name).inserted else { throw PipelineError("preset `\(p.name)` is listed twice", location: url.path) }
        }
        let dir = url.deletingLastPathComponent()
        return ExperimentFile(url: url, pipeline: dir.appendingPathComponent(c.pipeline).standardizedFileURL,
                              runs: dir.appendingPathComponent(c.runs).standardizedFileURL, source: c.source, presets: c.presets,
                              summary: c.summary)
    }

    public func preset(_ name: String) throws -> Preset {
        guard let p = presets.first(where: { $0.name == name }) else {
            throw PipelineError("no preset `\(name)` in the experiments file", location: url.path,
                                hint: "one of: " + presets.map(\.name).joined(separator: ", "))
        }
        return p
    }

    /// The presets named (all runnable ones for `all`), checked to exist.
    public func select(_ names: [String]) throws -> [Preset] {
        if names == ["all"] { return presets.filter { $0.unsupported == nil } }
        return try names.map(preset)
    }
}

/// What `experiment run` writes beside each run's pipeline file: `experiment.json`.
public struct ExperimentRecord: Codable, Equatable, Sendable {
    public static let fileName = "experiment.json"
    public var preset: String
    public var row: Int?
    public var settings: String
    public var overrides: [String]
    public var startedAt: String
    /// The whole run (every stage that ran), and each stage that ran.
    public var wallSeconds: Double
    public var stageSeconds: [String: Double]
    public var stagesRun: [String]

    enum CodingKeys: String, CodingKey {
        case preset, row, settings, overrides
        case startedAt = "started_at", wallSeconds = "wall_seconds", stageSeconds = "stage_seconds", stagesRun = "stages_run"
    }
}

public enum Experiments {
    /// Prepares `<runs>/<preset>/`: a copy of the pipeline file and of the files beside it that
    /// its stages read but no stage writes (weights.yaml), so the run directory is a pipeline of
    /// its own with its own lock, data/ and outputs.
    public static func prepareRunDirectory(_ file: ExperimentFile, preset: ExperimentFile.Preset, runs: URL? = nil) throws -> URL {
        let dir = (runs ?? file.runs).appendingPathComponent(preset.name)
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let source = try Pipeline.load(url: file.pipeline, checkDisk: false)
        let written = Set(source.stages.flatMap(\.outs))
        var copies = [file.pipeline.lastPathComponent]
        for stage in source.stages {
            for dep in stage.deps where !written.contains(where: { Pipeline.overlaps($0, dep) }) {
                if !copies.contains(dep) { copies.append(dep) }
            }
        }
        let base = file.pipeline.deletingLastPathComponent()
        for rel in copies {
            let from = base.appendingPathComponent(rel), to = dir.appendingPathComponent(rel)
            guard fm.fileExists(atPath: from.path) else { continue }
            try fm.createDirectory(at: to.deletingLastPathComponent(), withIntermediateDirectories: true)
            // Rewritten on every run so a changed pipeline file reaches every preset (the lock
            // then reruns what the change affects).
            try AtomicFile.write(try Data(contentsOf: from), to: to)
        }
        return dir
    }

    /// Runs one preset: the pipeline in its run directory with the preset's `set` plus `extra`
    /// overrides (later wins), timing each stage; writes `experiment.json` when a stage ran.
    @discardableResult
    public static func run(_ file: ExperimentFile, preset: ExperimentFile.Preset, extra: [String] = [], runs: URL? = nil,
                           toolDirectory: URL?, childOutput: FileHandle? = nil,
                           log: @escaping (String) -> Void) throws -> ExperimentRecord? {
        if let why = preset.unsupported {
            throw PipelineError("preset `\(preset.name)` (book row \(preset.row.map(String.init) ?? "-")) cannot run here: \(why)",
                                location: file.url.path)
        }
        let dir = try prepareRunDirectory(file, preset: preset, runs: runs)
        let overrides = preset.overrides + extra
        let pipeline = try Pipeline.load(url: dir.appendingPathComponent(file.pipeline.lastPathComponent), overrides: overrides)
        log("== \(preset.name)\(preset.row.map { " (book row \($0))" } ?? ""): \(preset.settings)")
        log("   in \(dir.path)" + (overrides.isEmpty ? "" : " with --set " + overrides.joined(separator: " --set ")))
        // Stage times from the runner's own lines: a stage starts at its "- NAME: running" line and
        // ends at the next line the runner prints (written after the stage's lock entry).
        let start = Date()
        var stageSeconds: [String: Double] = [:]
        var current: (String, Date)? = nil
        let runner = Runner(pipeline: pipeline, log: { line in
            if let (name, began) = current { stageSeconds[name] = Date().timeIntervalSince(began); current = nil }
            if line.hasPrefix("- "), let colon = line.firstIndex(of: ":"), line[colon...].hasPrefix(": running") {
                current = (String(line[line.index(line.startIndex, offsetBy: 2)..<colon]), Date())
            }
            log(line)
        })
        runner.childOutput = childOutput
        let report = try runner.run(RunOptions(toolDirectory: toolDirectory))
        let wall = Date().timeIntervalSince(start)
        guard !report.ran.isEmpty else {
            log("   up to date: nothing ran (the recorded experiment.json is kept)")
            return nil
        }
        let formatter = ISO8601DateFormatter()
        let record = ExperimentRecord(preset: preset.name, row: preset.row, settings: preset.settings, overrides: overrides,
                                      startedAt: formatter.string(from: start), wallSeconds: wall, stageSeconds: stageSeconds,
                                      stagesRun: report.ran)
        try AtomicFile.write(try PrettyJSON.file(record), to: dir.appendingPathComponent(ExperimentRecord.fileName))
        log(String(format: "   %@: %.1f s (%@)", preset.name, wall,
                   report.ran.map { String(format: "%@ %.1f s", $0, stageSeconds[$0] ?? 0) }.joined(separator: ", ")))
        return record
    }
}

import ArtifactKit
import Foundation

/// The summary table of experiment runs (markdown): preset, book row, settings, the metric
/// columns, wall time and the book's test accuracy. Which params make the settings, which files
/// hold the metrics and which stages are timed come from the experiments file's `summary:`.
public enum ExperimentSummary {
    public struct Row: Equatable, Sendable {
        public var preset: String
        public var bookRow: String
        public var settings: String
        /// One cell per metric column of the summary ("-" where the value is missing).
        public var metrics: [String]
        public var wall: String
        public var bookTest: Double?
    }

    /// What a run directory holds that the summary reads: its lock file's params and JSON files.
    struct RunValues {
        let directory: URL
        /// Every stage's params (stages in name order; a param means the same in each).
        let params: [String: JSONValue]

        init(directory: URL, lockName: String) {
            self.directory = directory
            var params: [String: JSONValue] = [:]
            if let lock = try? LockFile.read(from: directory.appendingPathComponent(lockName)) {
                for name in lock.stages.keys.sorted() { params.merge(lock.stages[name]!.params) { a, _ in a } }
            }
            self.params = params
        }

        func json(_ path: String) -> JSONValue? {
            (try? Data(contentsOf: directory.appendingPathComponent(path))).flatMap { try? JSONDecoder().decode(JSONValue.self, from: $0) }
        }

        func value(_ source: SummarySource) -> JSONValue? {
            switch source {
            case .param(let name):
                return params[name]
            case .file(let path, let key):
                return key.split(separator: ".").reduce(json(path)) { value, part in value?[String(part)] }
            }
        }
    }

    /// `text` with `{}` replaced by `value`.
    static func fill(_ text: String, _ value: String) -> String { text.replacingOccurrences(of: "{}", with: value) }

    /// The settings parts that show for a run.
    static func settings(_ parts: [SettingPart], _ run: RunValues) -> [String] {
        parts.compactMap { part in
            guard let value = run.value(.param(part.param)).flatMap(part.format.render), value != part.unless else { return nil }
            var text = fill(part.text, value)
            if let suffix = part.suffix, let extra = run.value(suffix.source).flatMap(suffix.format.render),
               suffix.equals == nil || suffix.equals == extra {
                text += fill(suffix.text, extra)
            }
            return text
        }
    }

    /// `experiment.json`'s times, or the fallback's for a directory without one, or "-".
    static func wall(_ column: WallColumn, _ run: RunValues) -> String {
        let record = (try? Data(contentsOf: run.directory.appendingPathComponent(ExperimentRecord.fileName)))
            .flatMap { try? JSONDecoder().decode(ExperimentRecord.self, from: $0) }
        if let record {
            let parts = column.stages.compactMap { s in record.stageSeconds[s].map { String(format: "%@ %.0f", s, $0) } }
            return String(format: "%.0f s", record.wallSeconds) + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
        }
        guard let fallback = column.fallback, let seconds = run.value(.file(fallback.file, key: fallback.key))?.doubleValue else {
            return "-"
        }
        let total = fallback.plus.reduce(seconds) { $0 + (run.value(.file(fallback.file, key: $1))?.doubleValue ?? 0) }
        return fill(fallback.text, SummaryFormat.seconds.render(.double(total)) ?? "-")
    }

    /// One row for a run directory (a pipeline directory holding `lockName` and the files `summary` reads).
    public static func row(runDirectory dir: URL, preset: ExperimentFile.Preset?, summary: SummarySpec,
                           lockName: String = "pipeline.lock") -> Row {
        let run = RunValues(directory: dir, lockName: lockName)
        let settings = settings(summary.settings, run)
        let metrics = summary.metrics.map { column in
            run.value(.file(column.file, key: column.key)).flatMap(column.format.render) ?? "-"
        }
        return Row(preset: preset?.name ?? dir.lastPathComponent, bookRow: preset?.row.map(String.init) ?? "-",
                   settings: settings.isEmpty ? (preset?.settings ?? "?") : settings.joined(separator: ", "),
                   metrics: metrics, wall: wall(summary.wall, run), bookTest: preset?.book?.test)
    }

    public static func markdown(_ rows: [Row], summary: SummarySpec) -> String {
        func line(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |\n" }
        let titles = ["preset", "book row", "settings"] + summary.metrics.map(\.title) + ["wall time", "book's test acc."]
        var out = line(titles) + "|" + String(repeating: "---|", count: titles.count) + "\n"
        for r in rows {
            out += line([r.preset, r.bookRow, r.settings] + r.metrics
                        + [r.wall, r.bookTest.map { String(format: "%.2f%%", $0) } ?? "-"])
        }
        return out
    }

    /// The markdown table `pipeline experiment summary` prints.
    public static func table(_ file: ExperimentFile, runs: URL? = nil, extra: [URL] = [], includeMissing: Bool = false) throws -> String {
        markdown(try rows(file, runs: runs, extra: extra, includeMissing: includeMissing), summary: try spec(file))
    }

    /// The file's `summary:`, or an error saying it is missing.
    public static func spec(_ file: ExperimentFile) throws -> SummarySpec {
        guard let summary = file.summary else {
            throw PipelineError("no `summary` section: `experiment summary` reads its columns from it", location: file.url.path,
                                hint: "add `summary:` with `done`, `settings`, `metrics` and `wall` (docs/pipeline.md \"Experiments\")")
        }
        return summary
    }

    /// Rows for every preset whose run directory has the `summary.done` file (all presets with
    /// `includeMissing`), then for each extra directory.
    public static func rows(_ file: ExperimentFile, runs: URL? = nil, extra: [URL] = [], includeMissing: Bool = false) throws -> [Row] {
        let summary = try spec(file)
        let lockName = file.pipeline.deletingPathExtension().lastPathComponent + ".lock"
        let base = runs ?? file.runs
        var rows: [Row] = []
        for preset in file.presets {
            let dir = base.appendingPathComponent(preset.name)
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(summary.done).path) {
                rows.append(row(runDirectory: dir, preset: preset, summary: summary, lockName: lockName))
            } else if includeMissing {
                rows.append(Row(preset: preset.name, bookRow: preset.row.map(String.init) ?? "-", settings: preset.settings,
                                metrics: summary.metrics.map { _ in "-" },
                                wall: preset.unsupported.map { "not supported: \($0)" } ?? "not run", bookTest: preset.book?.test))
            }
        }
        for dir in extra {
            rows.append(row(runDirectory: dir, preset: file.presets.first { $0.name == dir.lastPathComponent }, summary: summary,
                            lockName: lockName))
        }
        return rows
    }
}

import ArtifactKit
import Foundation

/// The wall time of each optimizer step a trainer ran in this process, and the manifest stats
/// both trainers report from them.
public struct StepTimes: Sendable {
    private var seconds: [Double] = []

    public init() {}

    /// Runs one step and records how long it took.
    public mutating func measure<R>(_ step: () throws -> R) rethrows -> R {
        let t0 = Date()
        let r = try step()
        seconds.append(Date().timeIntervalSince(t0))
        return r
    }

    /// Optimizer steps this process ran (0 for a --resume that only writes the outputs).
    public var count: Int { seconds.count }
    /// Mean wall seconds of a step (0 before any).
    public var mean: Double { seconds.isEmpty ? 0 : seconds.reduce(0, +) / Double(seconds.count) }
    /// Median wall seconds of a step (0 before any).
    public var median: Double {
        let s = seconds.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// `seconds_per_step_this_process`, its median, and the process's peak resident memory;
    /// the step times are null when this process ran no step.
    public var stats: [String: JSONValue] {
        let ran = count > 0
        return ["seconds_per_step_this_process": ran ? .double(mean) : .null,
                "median_seconds_per_step_this_process": ran ? .double(median) : .null,
                "peak_rss_bytes": ProcessMemory.peakResidentBytes.map { .int($0) } ?? .null]
    }
}

import ArtifactKit
import Foundation

/// The steps both trainers' stages take around their training loop: where the resume state
/// lives, whether to continue it, and the log and manifest written at the end.
public enum TrainingRun {
    public static let logFile = "log.jsonl"

    /// Creates `output` and returns the state to continue from (nil: start fresh), after `check`
    /// accepted it (see `ResumeState.load` for the modes).
    public static func resumeState(in output: URL, mode: ResumeMode, totalSteps: Int, progress: @escaping ProgressHandler,
                                   check: (ResumeState, String) throws -> Void) throws -> ResumeState? {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let url = output.appendingPathComponent(ResumeState.fileName)
        return try ResumeState.load(mode: mode, from: url, check: { try check($0, url.path) }, totalSteps: totalSteps,
                                    progress: progress)
    }

    /// `log.jsonl` of a finished run (written atomically).
    public static func writeLog(_ log: [LogRecord], into output: URL) throws {
        try AtomicFile.write(Data(log.map { $0.jsonLine() + "\n" }.joined().utf8), to: output.appendingPathComponent(logFile))
    }

    /// The stats every training manifest has: steps, examples, epochs, time.
    public static func commonStats(_ outcome: TrainingOutcome, epochs: Int, batchesPerEpoch: Int) -> [String: JSONValue] {
        ["steps": .int(outcome.steps), "examples_seen": .int(outcome.examplesSeen), "epochs": .int(epochs),
         "batches_per_epoch": .int(batchesPerEpoch), "wall_seconds": .double(outcome.elapsedSeconds)]
    }
}

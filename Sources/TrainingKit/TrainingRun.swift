import ArtifactKit
import Foundation

/// The steps both trainers' stages take around their training loop: where the resume state
/// lives, whether to continue it, and the log, best checkpoint and manifest stats of the run.
public enum TrainingRun {
    public static let logFile = "log.jsonl"
    /// `--save-best`: the checkpoint of the best evaluation, beside the last one.
    public static let bestModelFile = "best/model.safetensors"

    /// Creates `output` (removing temporaries that killed runs left: `AtomicFile.removeStaleTemporaries`)
    /// and returns the state to continue from (nil: start fresh), after `check`
    /// accepted it (see `ResumeState.load` for the modes). A fresh start removes an earlier run's
    /// best checkpoint, so the folder only ever describes this run. In a data-parallel run process
    /// 0 alone does this and sends the state to the others (`DataParallel.shareResumeState`).
    public static func resumeState(in output: URL, mode: ResumeMode, totalSteps: Int, parallel: DataParallel = .single,
                                   progress: @escaping ProgressHandler,
                                   check: (ResumeState, String) throws -> Void) throws -> ResumeState? {
        try parallel.shareResumeState {
            try loadResumeState(in: output, mode: mode, totalSteps: totalSteps, progress: progress, check: check)
        }
    }

    private static func loadResumeState(in output: URL, mode: ResumeMode, totalSteps: Int, progress: @escaping ProgressHandler,
                                        check: (ResumeState, String) throws -> Void) throws -> ResumeState? {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        AtomicFile.removeStaleTemporaries(in: output)
        let url = output.appendingPathComponent(ResumeState.fileName)
        let state = try ResumeState.load(mode: mode, from: url, check: { try check($0, url.path) }, totalSteps: totalSteps,
                                         progress: progress)
        let best = output.appendingPathComponent(bestModelFile).deletingLastPathComponent()
        if state == nil && FileManager.default.fileExists(atPath: best.path) { try FileManager.default.removeItem(at: best) }
        return state
    }

    /// `log.jsonl` of a finished run (written atomically).
    public static func writeLog(_ log: [LogRecord], into output: URL) throws {
        try AtomicFile.write(LogRecord.jsonLines(log), to: output.appendingPathComponent(logFile))
    }

    /// The best checkpoint's URL in `output` (its folder created).
    public static func bestModelURL(in output: URL) throws -> URL {
        let url = output.appendingPathComponent(bestModelFile)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        return url
    }

    /// What the best checkpoint's metadata says about its evaluation.
    public static func bestMetadata(_ best: BestTracker, metric: BestMetric) -> [String: String] {
        ["best_metric": metric.logKey, "best_value": best.value.map { "\($0)" } ?? "", "best_step": String(best.step),
         "best_epoch": String(best.epoch)]
    }

    /// The output files of a finished run: `files`, and the best checkpoint when it was kept.
    public static func outputs(_ files: [String], controls: TrainingControls, best: BestTracker) -> [String] {
        files + (controls.saveBest && best.value != nil ? [bestModelFile] : [])
    }

    /// The stats every training manifest has: steps, examples, epochs, time, the best evaluation
    /// of the tracked metric (and whether best/ holds it) and early stopping.
    public static func commonStats(_ outcome: TrainingOutcome, settings: LoopSettings, batchesPerEpoch: Int) -> [String: JSONValue] {
        let b = outcome.best, c = settings.controls
        let best: JSONValue = b.value == nil ? .null : .object([
            "metric": .string(c.bestMetric.logKey), "value": .number(b.value), "step": .int(b.step), "epoch": .int(b.epoch),
            "checkpoint": c.saveBest ? .string(bestModelFile) : .null])
        let stopped: JSONValue = !b.stoppedEarly ? .null : .object([
            "step": .int(outcome.steps), "patience": .int(c.earlyStoppingPatience),
            "evaluations_without_improvement": .int(b.evaluationsWithoutImprovement)])
        return ["steps": .int(outcome.steps), "examples_seen": .int(outcome.examplesSeen), "epochs": .int(settings.epochs),
                "batches_per_epoch": .int(batchesPerEpoch), "optimizer_steps_per_epoch": .int(batchesPerEpoch / c.gradAccum),
                "wall_seconds": .double(outcome.elapsedSeconds), "best": best, "early_stopped": stopped]
    }
}

import ArtifactKit
import GPT2
import GPT2Weights
import TestSupport
import TrainingKit
import Classification
import XCTest

/// The training controls through the `train` stage: files, manifest, log streaming, best/.
final class TrainingControlsStageTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("controls-stage") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func options(_ prepared: URL, out: String = "train") -> ClassifierTrainOptions {
        var o = StageTests.options(prepared, in: dir, epochs: 4)
        o.output = dir.appendingPathComponent(out)
        o.settings.evalFreq = 1
        o.settings.saveEvery = 0
        o.settings.controls = TrainingControls(lrSchedule: .linear, warmupSteps: 3, maxGradNorm: 0.5, gradAccum: 2, saveBest: true,
                                               earlyStoppingPatience: 4)
        return o
    }

    func run(_ o: ClassifierTrainOptions, progress: @escaping ProgressHandler = silentProgress) throws -> ClassifierTrainResult {
        try ClassifierTrainStage.run(o, makeBackend: StageTests.backend, progress: progress)
    }

    /// log.jsonl holds every record as soon as it is made; the finished file equals the run's log.
    func testLogGrowsWhileTraining() throws {
        let prepared = try StageTests.writePrepared(in: dir)
        let o = options(prepared)
        let logURL = o.output.appendingPathComponent("log.jsonl")
        var checked = 0
        let result = try run(o) { event in
            guard case .logged(let r) = event else { return }
            let lines = (try? String(contentsOf: logURL, encoding: .utf8))?.split(separator: "\n") ?? []
            XCTAssertEqual(lines.last.map(String.init), r.jsonLine())
            checked += 1
        }
        XCTAssertEqual(checked, result.outcome.log.count)
        XCTAssertEqual(try LogRecord.readLog(logURL), result.outcome.log)
        XCTAssertTrue(result.outcome.log.filter { $0.kind == "eval" }.allSatisfy { $0.learningRate != nil && $0.gradNorm != nil })
    }

    /// best/model.safetensors is the model at the best evaluation (the trained part equals the
    /// state of a run stopped there), its metadata and the manifest say which; a resumed run writes the same bytes.
    func testBestCheckpointManifestAndResume() throws {
        let prepared = try StageTests.writePrepared(in: dir)
        let o = options(prepared)
        let whole = try run(o)
        let best = try XCTUnwrap(whole.manifest?.stats["best"])
        let step = try XCTUnwrap(best["step"]?.intValue)
        XCTAssertEqual(best["metric"], "val_loss")
        XCTAssertEqual(best["checkpoint"], "best/model.safetensors")
        XCTAssertTrue(whole.manifest!.outputs.contains { $0.path == "best/model.safetensors" })
        let bestURL = o.output.appendingPathComponent("best/model.safetensors")
        let loaded = try loadCheckpoint(from: bestURL)
        XCTAssertEqual(loaded.metadata["best_step"], String(step))
        XCTAssertEqual(loaded.metadata["best_metric"], "val_loss")
        XCTAssertEqual(whole.outcome.log.filter { $0.kind == "eval" }.compactMap(\.valLoss).min(), best["value"]?.doubleValue)
        // The trained part of the best checkpoint is the state of a run stopped at that step.
        var atBest = options(prepared, out: "at-best")
        atBest.stopAfterSteps = step
        _ = try run(atBest)
        let state = try ResumeState.read(from: atBest.output.appendingPathComponent("state"))
        XCTAssertEqual(Array(loaded.params.suffix(state.parameters.count)), state.parameters)

        // `evaluate` reads the best folder like a train folder (frozen layers recomputed, no plots).
        var eo = ClassifierEvaluateOptions(model: bestURL.deletingLastPathComponent(), prepared: prepared,
                                           output: dir.appendingPathComponent("eval-best"))
        eo.pngConverter = "no-such-converter-for-tests"
        XCTAssertEqual(try ClassifierEvaluateStage.run(eo, makeBackend: StageTests.backend).metrics["test"]?.rows, 7)

        // Interrupted and resumed: the same final model, log records and best checkpoint bytes.
        var parts = options(prepared, out: "parts")
        parts.stopAfterSteps = max(1, step - 1)
        XCTAssertTrue(try run(parts).outcome.interrupted)
        parts.stopAfterSteps = nil
        parts.resume = .required
        let resumed = try run(parts)
        func zeroed(_ log: [LogRecord]) -> [LogRecord] { log.map { var r = $0; r.elapsedSeconds = 0; return r } }
        XCTAssertEqual(zeroed(resumed.outcome.log), zeroed(whole.outcome.log))
        XCTAssertEqual(try Data(contentsOf: parts.output.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: o.output.appendingPathComponent("model.safetensors")))
        XCTAssertEqual(try Data(contentsOf: parts.output.appendingPathComponent("best/model.safetensors")), try Data(contentsOf: bestURL))
        XCTAssertEqual(resumed.manifest?.stats["best"], whole.manifest?.stats["best"])
        XCTAssertEqual(resumed.manifest?.stats["early_stopped"], whole.manifest?.stats["early_stopped"])

        // A fresh run without --save-best leaves no best/ of an earlier run behind.
        var plain = options(prepared)
        plain.settings.controls.saveBest = false
        _ = try run(plain)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bestURL.path))
    }

    /// Early stopping ends the stage normally, with the outputs written and the stop in the
    /// manifest and the log; `--continue-interrupted` treats its state as a finished run.
    func testEarlyStoppingIsRecorded() throws {
        let prepared = try StageTests.writePrepared(in: dir)
        var o = options(prepared)
        o.settings.learningRate = 0.3
        o.settings.epochs = 10
        o.settings.controls.earlyStoppingPatience = 1
        let r = try run(o)
        XCTAssertFalse(r.outcome.interrupted)
        XCTAssertTrue(r.outcome.best.stoppedEarly)
        let stopped = try XCTUnwrap(r.manifest?.stats["early_stopped"])
        XCTAssertEqual(stopped["step"]?.intValue, r.outcome.steps)
        XCTAssertEqual(stopped["patience"], 1)
        XCTAssertEqual(r.outcome.log.last?.kind, "early_stop")
        var again = o
        again.resume = .ifInterrupted
        var notes: [String] = []
        _ = try run(again) { if case .note(let t) = $0 { notes.append(t) } }
        XCTAssertTrue(notes.contains { $0.contains("finished run") }, "\(notes)")
    }
}

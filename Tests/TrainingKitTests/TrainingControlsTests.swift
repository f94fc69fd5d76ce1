import ArtifactKit
import Foundation
import TestSupport
import TrainingKit
import XCTest

/// A trainer's settings with nothing but the loop (what both trainers' settings share).
private struct LoopOnly: TrainerSettings {
    var loop = LoopSettings(epochs: 2, evalFreq: 5)

    init() {}
    init(from decoder: Decoder) throws { loop = try LoopSettings(from: decoder) }
    func encode(to encoder: Encoder) throws { try loop.encode(to: encoder) }
}

final class TrainingControlsTests: XCTestCase {
    /// Each bad value is a PipelineError naming its key, never a crash.
    func testBadValuesNameTheirKey() {
        func expect(_ key: String, _ text: String, _ change: (inout TrainingControls) -> Void) {
            var s = LoopSettings(epochs: 1, evalFreq: 1)
            change(&s.controls)
            XCTAssertThrowsError(try s.validate(), key) { e in
                XCTAssertEqual((e as? PipelineError)?.location, "train.\(key)", "\(e)")
                XCTAssertTrue("\(e)".contains(text), "\(e)")
            }
        }
        expect("warmup_ratio", "warmup_ratio must be in [0, 1)") { $0.warmupRatio = 1 }
        expect("warmup_ratio", "warmup_ratio must be in [0, 1)") { $0.warmupRatio = -0.1 }
        expect("warmup_steps", "must not be negative") { $0.warmupSteps = -1 }
        expect("warmup_ratio", "both set") { $0.warmupSteps = 3; $0.warmupRatio = 0.1 }
        expect("min_lr", "must be in [0, lr]") { $0.lrSchedule = .cosine; $0.minLR = 1 }
        expect("min_lr", "lr_schedule is constant") { $0.minLR = 1e-6 }
        expect("initial_lr", "no warmup") { $0.initialLR = 1e-6 }
        expect("initial_lr", "must be in [0, lr]") { $0.warmupSteps = 2; $0.initialLR = -1 }
        expect("max_grad_norm", "finite number >= 0") { $0.maxGradNorm = -1 }
        expect("max_grad_norm", "finite number >= 0") { $0.maxGradNorm = .infinity }
        expect("grad_accum", "at least 1") { $0.gradAccum = 0 }
        expect("early_stopping_patience", "must not be negative") { $0.earlyStoppingPatience = -2 }
        var fine = LoopSettings(epochs: 1, evalFreq: 1)
        fine.controls.lrSchedule = .linear
        fine.controls.warmupRatio = 0.5
        fine.controls.initialLR = 1e-6
        fine.controls.minLR = 1e-6
        XCTAssertNoThrow(try fine.validate())
        fine.learningRate = 1e-4   // float32 1e-4 is a little below the decimal: min_lr 1e-4 is still lr, not above it
        fine.controls.minLR = 1e-4
        XCTAssertNoThrow(try fine.validate())
    }

    /// Grad-accum needs that many batches per epoch: a clear error, not an empty run.
    func testTooFewBatchesForGradAccumIsAClearError() {
        var s = LoopSettings(epochs: 1, evalFreq: 1)
        s.batchSize = 4
        s.controls.gradAccum = 3
        XCTAssertThrowsError(try EpochLoop(rowCount: 11, settings: s, progress: silentProgress)) { e in
            XCTAssertEqual((e as? PipelineError)?.location, "train.grad_accum", "\(e)")
        }
        XCTAssertEqual(try EpochLoop(rowCount: 26, settings: s, progress: silentProgress).stepsPerEpoch, 2)   // 6 batches / 3
        XCTAssertEqual(EpochLoop.totalSteps(rowCount: 26, settings: s), 2)
    }

    /// The controls are coded with snake_case keys beside the loop's (manifests, checkpoints);
    /// settings recorded before they existed decode to the defaults; at their defaults they stay
    /// out of the resume key (older states still resume), otherwise they are in it, and a schedule
    /// that depends on the run's length puts epochs and max_steps in it too.
    func testCodingAndResumeKey() throws {
        var s = LoopOnly()
        let plainKey = s.resumeKey
        XCTAssertFalse(plainKey.contains("lr_schedule"))
        XCTAssertEqual(s.asJSON["lr_schedule"], "constant")
        XCTAssertEqual(s.asJSON["grad_accum"], 1)
        XCTAssertEqual(s.asJSON["save_best"], false)
        var old = s.asJSON
        for key in TrainingControls.defaultJSON.keys { old[key] = nil }
        let decoded = try LoopOnly.decode(JSONValue.object(old).canonicalString, source: "old")
        XCTAssertEqual(decoded.loop, s.loop)

        s.loop.controls.maxGradNorm = 1
        XCTAssertTrue(s.resumeKey.contains("\"max_grad_norm\":1"), s.resumeKey)
        XCTAssertFalse(s.resumeKey.contains("\"epochs\""), "a constant schedule: epochs may grow on resume")
        s.loop.controls.lrSchedule = .cosine
        XCTAssertTrue(s.resumeKey.contains("\"epochs\":2"), s.resumeKey)
        let again = try LoopOnly.decode(JSONValue.object(s.asJSON).canonicalString, source: "new")
        XCTAssertEqual(again.loop, s.loop)
    }

    /// A resume state's metadata and log records written before the controls still load.
    func testOldStateMetadataAndLogRecordsLoad() throws {
        var settings = LoopSettings(epochs: 1, evalFreq: 2)
        settings.batchSize = 2
        let loop = try EpochLoop(rowCount: 8, settings: settings, progress: silentProgress)
        _ = try loop.run(stopAfterSteps: 3, train: { _ in StepResult(loss: 1, gradNorm: 0.5) }, losses: { _ in (1, 2) },
                         endOfEpoch: {}, save: {})
        var meta = loop.meta(settingsKey: "k", inputsKey: "i", trained: 0..<2)
        meta.best = nil
        meta.lastGradNorm = nil
        XCTAssertEqual(meta.log.map(\.gradNorm), [0.5, 0.5])
        XCTAssertEqual(meta.log.map(\.learningRate), [5e-5, 5e-5])
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(meta)) as? [String: Any])
        XCTAssertNil(json["best"])   // nil optionals are not written, as before
        json["best"] = nil
        let decoded = try JSONDecoder().decode(ResumeState.Meta.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertEqual(decoded, meta)
        XCTAssertNil(decoded.best)
        let record = LogRecord(kind: "eval", step: 1, epoch: 1, epochProgress: 0.1, examplesSeen: 4, trainLoss: 1, valLoss: 2,
                               elapsedSeconds: 0.5)
        let line = #"{"elapsed_seconds":0.5,"epoch":1,"epoch_progress":0.1,"examples_seen":4,"kind":"eval","step":1,"train_loss":1,"val_loss":2}"#
        XCTAssertEqual(record.jsonLine(), line, "a record without lr and grad norm is written as before")
        XCTAssertEqual(try JSONDecoder().decode(LogRecord.self, from: Data(line.utf8)), record)
    }

    /// Micro-batch weights: equal sizes 1/N, token counts their share, one micro-batch weight 1.
    func testAccumulationWeights() throws {
        func plan(_ n: Int) -> StepPlan {
            StepPlan(index: 0, microBatches: Array(repeating: [0], count: n), learningRate: 1, maxGradNorm: nil, measuresGradNorm: false)
        }
        var seen: [Float] = []
        let loss = plan(4).accumulate { _, _, w in seen.append(w); return 2 }
        XCTAssertEqual(seen, [0.25, 0.25, 0.25, 0.25])
        XCTAssertEqual(loss, 2)
        seen = []
        let weighted = plan(2).accumulate(sizes: [30, 10]) { i, _, w in seen.append(w); return i == 0 ? 1 : 5 }
        XCTAssertEqual(seen, [0.75, 0.25])
        XCTAssertEqual(weighted, 2)   // the mean over all 40 targets
        XCTAssertEqual(plan(1).accumulate(sizes: [7]) { _, _, w in w }, 1)
    }

    /// The improvement rule of each metric.
    func testBestMetricImproves() {
        XCTAssertTrue(BestMetric.loss.improves(3, on: nil))
        XCTAssertTrue(BestMetric.loss.improves(0.5, on: 0.6))
        XCTAssertFalse(BestMetric.loss.improves(0.6, on: 0.6))
        XCTAssertTrue(BestMetric.accuracy.improves(0.9, on: 0.8))
        XCTAssertFalse(BestMetric.accuracy.improves(0.8, on: 0.8))
        XCTAssertFalse(BestMetric.loss.improves(.nan, on: nil))
    }
}

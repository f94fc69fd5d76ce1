import ArtifactKit
import Foundation
import GPT2Weights
import GPT2
import TestSupport
import TrainingKit
import Instruct
import XCTest

/// The training controls in `train instruct` (the loop's share is tested with the classifier's toy).
final class InstructControlsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("icontrols") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func params(_ out: URL) throws -> [Float] { try loadCheckpoint(from: out.appendingPathComponent("model.safetensors")).params }

    /// grad_accum 2 with batch_size 2 is one batch of 4 per step: each micro-batch's gradient
    /// weighted by its share of the step's target tokens, the same parameters to float rounding.
    func testGradAccumEqualsOneLargerBatch() throws {
        let prepared = try TinyInstruct.prepare(into: dir)
        for maxSteps in [1, 3] {
            var big = TinyInstruct.settings()
            big.maxSteps = maxSteps
            var small = big
            small.batchSize = 2
            small.controls.gradAccum = 2
            let a = try InstructTrainStage.run(TinyInstruct.options(prepared, dir.appendingPathComponent("big\(maxSteps)"), big))
            let b = try InstructTrainStage.run(TinyInstruct.options(prepared, dir.appendingPathComponent("small\(maxSteps)"), small))
            XCTAssertEqual(a.outcome.examplesSeen, b.outcome.examplesSeen)
            XCTAssertEqual(a.manifest?.stats["optimizer_steps_per_epoch"], 6)
            XCTAssertEqual(b.manifest?.stats["optimizer_steps_per_epoch"], 6)
            let pa = try params(dir.appendingPathComponent("big\(maxSteps)")), pb = try params(dir.appendingPathComponent("small\(maxSteps)"))
            let start = randomWeights(layout: ParameterLayout(config: TinyInstruct.config, head: .languageModel), seed: big.seed,
                                      scheme: big.initScheme)
            var largest: Float = 0
            for i in pa.indices { largest = max(largest, abs(pa[i] - pb[i])) }
            XCTAssertLessThan(largest, 1e-6, "\(maxSteps) steps")
            XCTAssertNotEqual(pa, start)
        }
    }

    /// Stopped at any step and resumed, a run with every control on (cosine from initial_lr to
    /// min_lr after a warmup, clipping, accumulation, epoch evaluations, best checkpoint, early
    /// stopping) ends as the uninterrupted run: parameters, log, best checkpoint bytes, manifest stats.
    func testResumeEqualsUninterruptedWithEveryControl() throws {
        let prepared = try TinyInstruct.prepare(into: dir)
        var s = TinyInstruct.settings(epochs: 3)
        s.batchSize = 2
        s.learningRate = 5e-3
        s.controls = TrainingControls(lrSchedule: .cosine, warmupSteps: 2, initialLR: 1e-4, minLR: 1e-4, maxGradNorm: 1, gradAccum: 2,
                                      evalStrategy: .epoch, saveBest: true, earlyStoppingPatience: 2)
        let whole = dir.appendingPathComponent("whole")
        let a = try InstructTrainStage.run(TinyInstruct.options(prepared, whole, s))
        let evals = a.outcome.log.filter { $0.kind == "eval" }
        XCTAssertEqual(evals.map(\.step), [6, 12, 18])
        XCTAssertTrue(evals.allSatisfy { $0.learningRate != nil && $0.gradNorm != nil })
        XCTAssertEqual(a.manifest?.stats["best"]?["checkpoint"], "best/model.safetensors")
        let bestBytes = try Data(contentsOf: whole.appendingPathComponent("best/model.safetensors"))
        var eo = InstructEvaluateOptions(model: whole.appendingPathComponent("best"), prepared: prepared,
                                         output: dir.appendingPathComponent("eval-best"), vocabDirectory: try TinyInstruct.vocab())
        eo.maxNewTokens = 4
        eo.limit = 2
        XCTAssertNoThrow(try InstructEvaluateStage.run(eo))
        func zeroed(_ log: [LogRecord]) -> [LogRecord] { log.map { var r = $0; r.elapsedSeconds = 0; return r } }
        for stop in [1, 5, 6, 13] {
            let parts = dir.appendingPathComponent("parts\(stop)")
            var o = TinyInstruct.options(prepared, parts, s)
            o.stopAfterSteps = stop
            XCTAssertTrue(try InstructTrainStage.run(o).outcome.interrupted)
            o.stopAfterSteps = nil
            o.resume = .required
            let b = try InstructTrainStage.run(o)
            XCTAssertEqual(zeroed(b.outcome.log), zeroed(a.outcome.log), "stop \(stop)")
            XCTAssertEqual(try params(parts), try params(whole), "stop \(stop)")
            XCTAssertEqual(try Data(contentsOf: parts.appendingPathComponent("best/model.safetensors")), bestBytes, "stop \(stop)")
            XCTAssertEqual(b.manifest?.stats["best"], a.manifest?.stats["best"])
            XCTAssertEqual(b.manifest?.stats["early_stopped"], a.manifest?.stats["early_stopped"])
            XCTAssertEqual(try LogRecord.readLog(parts.appendingPathComponent("log.jsonl")), b.outcome.log)
        }
    }

    func testAccuracyIsNotAnInstructMetric() {
        var s = TinyInstruct.settings()
        s.controls.bestMetric = .accuracy
        XCTAssertThrowsError(try s.validate()) { e in
            XCTAssertEqual((e as? PipelineError)?.location, "train.best_metric", "\(e)")
        }
    }
}

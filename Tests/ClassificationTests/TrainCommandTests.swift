import ArtifactKit
import Foundation
import TestSupport
import XCTest

/// The `train` executable with the training-control flags, as the pipeline files call it.
final class TrainCommandTests: XCTestCase {
    func testControlFlagsTrainAndReport() throws {
        let dir = try TestPaths.makeTempDir("train-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try StageTests.writePrepared(in: dir)
        let config = dir.appendingPathComponent("tiny.json")
        try JSONEncoder().encode(StageTests.config).write(to: config)
        let out = dir.appendingPathComponent("train")
        let base = ["--prepared", prepared.path, "--out", out.path, "--model", config.path, "--weights", "random",
                    "--epochs", "3", "--batch-size", "2", "--eval-freq", "1", "--lr", "0.01"]
        let r = try runTool("train", base + ["--lr-schedule", "cosine", "--warmup-ratio", "0.2", "--min-lr", "0.001",
                                             "--max-grad-norm", "1", "--grad-accum", "2", "--save-best", "true",
                                             "--best-metric", "accuracy", "--early-stopping-patience", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("lr ") && r.stderr.contains("grad norm"), r.stderr)
        XCTAssertTrue(r.stderr.contains("best/model.safetensors"), r.stderr)
        let m = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(m.params["lr_schedule"], "cosine")
        XCTAssertEqual(m.params["grad_accum"], 2)
        XCTAssertEqual(m.params["best_metric"], "accuracy")
        XCTAssertEqual(m.stats["optimizer_steps_per_epoch"], 5)   // 20 rows: 10 batches of 2, 5 steps of 2
        XCTAssertEqual(m.stats["best"]?["metric"], "val_accuracy")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("best/model.safetensors").path))

        // Bad values: the key in our words, exit status 1, nothing written.
        let bad = try runTool("train", base + ["--out", dir.appendingPathComponent("bad").path, "--warmup-ratio", "1.5"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("train.warmup_ratio") && bad.stderr.contains("must be in [0, 1)"), bad.stderr)
        let schedule = try runTool("train", base + ["--lr-schedule", "exponential"])
        XCTAssertNotEqual(schedule.status, 0)
        XCTAssertTrue(schedule.stderr.contains("constant") && schedule.stderr.contains("cosine"), schedule.stderr)
    }
}

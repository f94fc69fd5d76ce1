import ArtifactKit
import Foundation
import GPT2TestSupport
import TestSupport
import XCTest

/// `train` as several processes under Open MPI (docs/distributed.md): the same losses,
/// accuracies and weights as one process, to float rounding (the gradient sums are added in
/// another order). Skipped with a message when mpirun is not installed.
final class DataParallelTrainTests: XCTestCase {
    /// Relative tolerance between N processes and one: float32 sums in another order, over a
    /// few AdamW steps (measured differences are around 1e-7).
    static let tolerance = 1e-4

    func testTwoProcessesReproduceOneProcessAndResumeWithAnyCount() throws {
        _ = try MPIRun.executable()
        let dir = try TestPaths.makeTempDir("train-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try StageTests.writePrepared(in: dir, rows: ["train": 24, "validation": 7, "test": 5])
        let config = dir.appendingPathComponent("tiny.json")
        try JSONEncoder().encode(StageTests.config).write(to: config)
        func args(_ out: String, steps: Int, _ extra: [String] = []) -> [String] {
            ["--prepared", prepared.path, "--out", dir.appendingPathComponent(out).path, "--model", config.path, "--weights", "random",
             "--epochs", "4", "--batch-size", "5", "--eval-freq", "2", "--eval-iter", "2", "--lr", "0.01", "--max-steps", String(steps)] + extra
        }
        // One process, 8 steps straight (the frozen first block is cached: its pass is split too).
        XCTAssertEqual(try runTool("train", args("one", steps: 8)).status, 0)
        // Two processes through --processes (train starts itself under mpirun), uneven shares of 5 rows.
        let two = try runTool("train", args("two", steps: 8, ["--processes", "2"]))
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("2 processes share every batch"), two.stderr)
        try assertSameRun(dir.appendingPathComponent("one"), dir.appendingPathComponent("two"))

        // Resume across counts: 3 processes for 4 steps, then 1 process --resume to 8; and 1 then 2.
        XCTAssertEqual(try MPIRun.tool("train", processes: 3, args("three-one", steps: 4)).status, 0)
        XCTAssertEqual(try runTool("train", args("three-one", steps: 8, ["--resume"])).status, 0)
        try assertSameRun(dir.appendingPathComponent("one"), dir.appendingPathComponent("three-one"))
        XCTAssertEqual(try runTool("train", args("one-two", steps: 4)).status, 0)
        let resumed = try MPIRun.tool("train", processes: 2, args("one-two", steps: 8, ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try assertSameRun(dir.appendingPathComponent("one"), dir.appendingPathComponent("one-two"))
    }

    func testBadJobsStopEveryProcessWithAMessage() throws {
        _ = try MPIRun.executable()
        let dir = try TestPaths.makeTempDir("train-mpi-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try StageTests.writePrepared(in: dir)
        let config = dir.appendingPathComponent("tiny.json")
        try JSONEncoder().encode(StageTests.config).write(to: config)
        let exe = try TestPaths.builtExecutable("train").path
        func args(_ out: String, lr: String = "0.01", batch: String = "4") -> [String] {
            ["--prepared", prepared.path, "--out", dir.appendingPathComponent(out).path, "--model", config.path, "--weights", "random",
             "--epochs", "1", "--batch-size", batch, "--lr", lr]
        }
        // Processes with different settings (two app contexts): all stop, nothing is written.
        let mixed = try MPIRun.raw(["-np", "1", exe] + args("mixed") + [":", "-np", "1", exe] + args("mixed", lr: "0.02"))
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.stderr.contains("run other settings, inputs or another build than process 0"), mixed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("mixed/model.safetensors").path))
        // More processes than rows in a batch.
        let many = try MPIRun.tool("train", processes: 3, args("many", batch: "2"))
        XCTAssertNotEqual(many.status, 0)
        XCTAssertTrue(many.stderr.contains("3 processes but batches of 2 rows") && many.stderr.contains("train.processes"), many.stderr)
        // --processes that disagrees with mpirun's -np.
        let wrong = try MPIRun.tool("train", processes: 2, args("wrong") + ["--processes", "3"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("--processes 3, but mpirun started 2 processes"), wrong.stderr)
    }

    func assertSameRun(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertSameTrainingRun(a, b, tolerance: Self.tolerance, file: file, line: line)
    }
}

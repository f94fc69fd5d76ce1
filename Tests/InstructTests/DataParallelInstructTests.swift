import Foundation
import GPT2TestSupport
import TestSupport
import XCTest

/// `train instruct` as two processes under Open MPI: the same losses, gradient norms and
/// weights as one process to float rounding, for full fine-tuning with gradient accumulation
/// and for LoRA (docs/distributed.md). Skipped with a message when mpirun is not installed.
final class DataParallelInstructTests: XCTestCase {
    func testTwoProcessesReproduceOneProcess() throws {
        _ = try MPIRun.executable()
        let dir = try TestPaths.makeTempDir("instruct-mpi")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        let config = dir.appendingPathComponent("tiny.json")
        try JSONEncoder().encode(TinyInstruct.config).write(to: config)
        func args(_ out: String, _ extra: [String]) -> [String] {
            ["instruct", "--prepared", prepared.path, "--out", dir.appendingPathComponent(out).path, "--model", config.path,
             "--weights", "random", "--epochs", "2", "--batch-size", "3", "--eval-freq", "2", "--eval-iter", "2", "--lr", "0.001"] + extra
        }
        for (name, extra) in [("full", ["--grad-accum", "2", "--max-grad-norm", "1"]), ("lora", ["--lora", "true"])] {
            let one = try runTool("train", args("\(name)-1", extra))
            XCTAssertEqual(one.status, 0, one.stderr)
            let two = try MPIRun.tool("train", processes: 2, args("\(name)-2", extra))
            XCTAssertEqual(two.status, 0, two.stderr)
            try assertSameTrainingRun(dir.appendingPathComponent("\(name)-1"), dir.appendingPathComponent("\(name)-2"), tolerance: 1e-4)
        }
    }
}

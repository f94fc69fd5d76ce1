import ArtifactKit
import Foundation
import PipelineRunner
import XCTest

/// `run_params`: params that go into a stage's command but do not make it stale (how many
/// processes train uses: the results must not depend on it).
final class RunParamsTests: XCTestCase {
    static let yaml = """
    params:
      train:
        lr: 1
        processes: 1
    stages:
      train:
        cmd: mkdir -p out && echo ${train.lr} > out/model.txt && echo ${train.processes} >> ran-with.txt
        params: [train.lr]
        run_params: [train.processes]
        outs: [out]
    """

    func testChangingARunParamRunsWithItButLeavesTheStageUpToDate() throws {
        let ws = try Workspace(Self.yaml)
        XCTAssertEqual(try ws.run(set: ["train.processes=2"]).ran, ["train"])
        XCTAssertEqual(ws.read("ran-with.txt"), "2\n")
        // The lock keeps the placeholder, not the value, and no param entry for it.
        let lock = try XCTUnwrap(try ws.lock().stages["train"])
        XCTAssertTrue(lock.cmd.contains("echo ${train.processes} >> ran-with.txt"), lock.cmd)
        XCTAssertEqual(Array(lock.params.keys), ["train.lr"])
        XCTAssertEqual(try ws.runner().status().first?.reasons, [])
        XCTAssertEqual(try ws.run(set: ["train.processes=4"]).ran, [])
        // A real param still makes it stale, and the run uses the run param's current value.
        XCTAssertEqual(try ws.run(set: ["train.lr=2", "train.processes=3"]).ran, ["train"])
        XCTAssertEqual(ws.read("ran-with.txt"), "2\n3\n")
    }

    func testARunParamMustBeDefinedAndNotAlsoAParam() throws {
        let both = try Workspace(Self.yaml.replacingOccurrences(of: "params: [train.lr]", with: "params: [train.lr, train.processes]"))
        let m1 = pipelineErrorMessage { _ = try both.pipeline() }
        XCTAssertTrue(m1.contains("run_params entry `train.processes` is also in `params`"), m1)
        let unknown = try Workspace(Self.yaml.replacingOccurrences(of: "run_params: [train.processes]", with: "run_params: [train.threads]"))
        let m2 = pipelineErrorMessage { _ = try unknown.pipeline() }
        XCTAssertTrue(m2.contains("run_params entry `train.threads` is not defined"), m2)
    }
}

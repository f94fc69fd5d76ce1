import Foundation
import PipelineRunner
import TestSupport
import XCTest

/// Runs the built `pipeline` executable, as a user would.
final class CommandLineTests: XCTestCase {
    /// The built `pipeline` run in `dir`; a missing build fails the test (it is not skipped).
    func pipeline(_ args: [String], in dir: URL) throws -> ToolRun {
        let exe = TestPaths.executable("pipeline")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: exe.path), "build the package first: \(exe.path)")
        return try runProcess(exe, args, cwd: dir)
    }

    func testRunStatusAndToolsOnPath() throws {
        let ws = try Workspace("""
        params:
          g:
            word: hi
        stages:
          where:
            cmd: command -v pipeline > where.txt && echo ${g.word} > word.txt
            params: [g.word]
            outs: [where.txt, word.txt]
        """, name: "sub/flow.yaml")
        let dry = try pipeline(["run", "--dry", "-f", "sub/flow.yaml", "--set", "g.word=yo"], in: ws.dir)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("- where: would run (never run)\n  $ command -v pipeline > where.txt && echo yo > word.txt"), dry.stdout)
        XCTAssertFalse(ws.exists("sub/where.txt"))
        XCTAssertFalse(ws.exists("sub/flow.lock"))

        let first = try pipeline(["run", "-f", "sub/flow.yaml"], in: ws.dir)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("- where: running (never run)\n  $ command -v pipeline > where.txt && echo hi > word.txt"), first.stdout)
        // Commands run in the pipeline file's directory and find the sibling tools first on PATH.
        let found = try XCTUnwrap(ws.read("sub/where.txt")).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(URL(fileURLWithPath: found).resolvingSymlinksInPath().path,
                       TestPaths.executable("pipeline").resolvingSymlinksInPath().path)
        XCTAssertTrue(ws.exists("sub/flow.lock"))

        let status = try pipeline(["status", "-f", "sub/flow.yaml", "--set", "g.word=bye"], in: ws.dir)
        XCTAssertEqual(status.status, 0)
        XCTAssertTrue(status.stdout.contains("where: stale\n    cmd changed\n    param g.word changed (\"hi\" -> \"bye\")"), status.stdout)
        let json = try pipeline(["status", "-f", "sub/flow.yaml", "--json"], in: ws.dir)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let stages = try XCTUnwrap(parsed?["stages"] as? [[String: Any]])
        XCTAssertEqual(stages.first?["stale"] as? Bool, false)

        let again = try pipeline(["run", "-f", "sub/flow.yaml"], in: ws.dir)
        XCTAssertTrue(again.stdout.contains("- where: up to date"), again.stdout)
    }

    func testSecondRunInTheSameDirectoryIsRefused() throws {
        let ws = try Workspace("stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
        let held = try RunLock.acquire(in: ws.dir)
        let refused = try pipeline(["run"], in: ws.dir)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("another `pipeline run` (pid \(getpid())) is already running"), refused.stderr)
        XCTAssertFalse(ws.exists("a.txt"))
        held.release()
        XCTAssertEqual(try pipeline(["run"], in: ws.dir).status, 0)
        XCTAssertTrue(ws.exists("a.txt"))
    }

    func testBadFileExitsNonZeroWithAClearMessage() throws {
        let ws = try Workspace("stages:\n  a:\n    cmd: echo\n    typo: 1\n")
        let r = try pipeline(["run"], in: ws.dir)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("pipeline.yaml:4: unknown key `typo` in stage `a`"), r.stderr)
        let failing = try Workspace("stages:\n  a:\n    cmd: exit 4\n")
        let f = try pipeline(["run"], in: failing.dir)
        XCTAssertEqual(f.status, 1)
        XCTAssertTrue(f.stderr.contains("stage a failed with exit code 4"), f.stderr)
    }

    /// `pipeline experiment summary` prints the table of ExperimentSummaryTests's fake run directories.
    func testExperimentSummaryPrintsTheTable() throws {
        let root = try TestPaths.makeTempDir("summary-cli")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let (runs, extra) = try ExperimentSummaryTests.fakeRuns(in: root)
        let r = try pipeline(["experiment", "summary", "-e", ExperimentSummaryTests.chapter6.path, "--runs", "runs"] + extra.map(\.path),
                             in: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, ExperimentSummaryTests.expectedTable)
        XCTAssertEqual(runs.lastPathComponent, "runs")
        let missing = try pipeline(["experiment", "summary", "-e", "none.yaml"], in: root)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.hasPrefix("error: \(root.appendingPathComponent("none.yaml").path): cannot read the experiments file"),
                      missing.stderr)
    }
}

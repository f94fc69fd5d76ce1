import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

final class RunnerTests: XCTestCase {
    func testStagesAreOrderedByDependencies() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        let p = try ws.pipeline()
        let names = p.stages.map(\.name)
        // Ties keep file order (side comes first in the file among the stages without upstream).
        XCTAssertEqual(names, ["side", "first", "second", "third"])
        XCTAssertEqual(p.stage(named: "second")?.upstream, ["first"])
        XCTAssertEqual(p.stage(named: "third")?.upstream, ["second"])
        XCTAssertEqual(p.stage(named: "first")?.command, "mkdir -p out1 && echo 1 > out1/a.txt && echo first >> runs.log")
        XCTAssertEqual(p.downstreamClosure(of: ["first"]), ["first", "second", "third"])
        XCTAssertEqual(p.upstreamClosure(of: ["third"]), ["first", "second", "third"])
        XCTAssertTrue(p.graphText().contains("second  <- first (out1/a.txt)"), p.graphText())
        XCTAssertTrue(p.graphDot().contains("\"first\" -> \"second\";"))
    }

    func testFirstRunRunsEverythingAndSecondRunSkipsEverything() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        let first = try ws.run()
        XCTAssertEqual(first.ran, ["side", "first", "second", "third"])
        XCTAssertEqual(first.outcome("first")?.reasons, [.neverRun])
        XCTAssertEqual(ws.runsLog, ["side", "first", "second", "third"])
        XCTAssertEqual(ws.read("second.txt"), "1\nin\nhello\n")

        ws.logs.removeAll()
        let second = try ws.run()
        XCTAssertEqual(second.ran, [])
        XCTAssertEqual(Set(actions(second).values), [.upToDate])
        for name in ["side", "first", "second", "third"] {
            XCTAssertTrue(ws.logs.contains("- \(name): up to date"), "\(ws.logs)")
        }
        XCTAssertEqual(ws.runsLog.count, 4, "nothing ran again")
    }

    func testLockRecordsCommandParamsAndHashes() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        let lock = try ws.lock()
        let first = try XCTUnwrap(lock.stages["first"])
        XCTAssertEqual(first.cmd, "mkdir -p out1 && echo 1 > out1/a.txt && echo first >> runs.log")
        XCTAssertEqual(first.params, ["a.n": 1])
        XCTAssertEqual(first.deps, [PathRecord(path: "input.txt", sha256: FileHash.sha256(of: "in\n"), size: 3)])
        let out = try XCTUnwrap(first.outs.first)
        XCTAssertEqual(out.path, "out1")
        XCTAssertEqual(out.files, 1)
        XCTAssertEqual(out.size, 2)
        let entry = FileRecord(path: "a.txt", sha256: FileHash.sha256(of: "1\n"), size: 2)
        XCTAssertEqual(out.contents, [entry])
        XCTAssertEqual(out.sha256, FileHash.sha256(of: "files 1\n\(entry.sha256)  2  a.txt\n"))
        // The same digest from coreutils, independently of this code.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "(echo 'files 1'; cd out1 && echo \"$(sha256sum < a.txt | cut -d' ' -f1)  $(stat -c %s a.txt)  a.txt\") | sha256sum | cut -d' ' -f1"]
        shell.currentDirectoryURL = ws.dir
        let pipe = Pipe()
        shell.standardOutput = pipe
        try shell.run()
        let coreutils = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        shell.waitUntilExit()
        XCTAssertEqual(out.sha256, coreutils.trimmingCharacters(in: .whitespacesAndNewlines))
        // A whole subtree of params is recorded as its value.
        XCTAssertEqual(lock.stages["side"]?.params, ["a.words": ["x", "y"]])
        // Human-readable: pretty JSON, one key per line.
        let text = try XCTUnwrap(ws.read("pipeline.lock"))
        XCTAssertTrue(text.contains("\"cmd\" : \"mkdir -p out1"), text)
    }

    func testChangingOneParamRerunsOnlyWhatDependsOnIt() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        // b.m is read by second only; third runs because second ran; first and side do not.
        try ws.write("pipeline.yaml", chainYAML.replacingOccurrences(of: "m: hello", with: "m: bye"))
        let report = try ws.run()
        XCTAssertEqual(report.ran, ["second", "third"])
        let reasons = report.outcome("second")?.reasons ?? []
        XCTAssertTrue(reasons.contains(.paramChanged(key: "b.m", old: "hello", new: "bye")), "\(reasons)")
        XCTAssertTrue(reasons.contains { $0.description == "param b.m changed (\"hello\" -> \"bye\")" })
        XCTAssertEqual(report.outcome("third")?.reasons, [.depChanged(path: "second.txt", detail: "size 11 -> 9 bytes"),
                                                          .upstream(stage: "second", ran: true)])
        XCTAssertEqual(report.outcome("first")?.action, .upToDate)
        XCTAssertEqual(report.outcome("side")?.action, .upToDate)
        XCTAssertEqual(ws.read("second.txt"), "1\nin\nbye\n")
    }

    func testSetOverridesAParamForOneRun() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        let report = try ws.run(set: ["a.n=2"])
        XCTAssertEqual(report.ran, ["first", "second", "third"])
        XCTAssertTrue(report.outcome("first")!.reasons.contains(.paramChanged(key: "a.n", old: 1, new: 2)))
        XCTAssertTrue(report.outcome("first")!.reasons.contains(.commandChanged(
            old: "mkdir -p out1 && echo 1 > out1/a.txt && echo first >> runs.log",
            new: "mkdir -p out1 && echo 2 > out1/a.txt && echo first >> runs.log")))
        XCTAssertEqual(ws.read("out1/a.txt"), "2\n")
        XCTAssertEqual(try ws.lock().stages["first"]?.params, ["a.n": 2])
        // Without the override the file's value counts again, so `first` is stale once more.
        let status = try ws.runner().status()
        XCTAssertEqual(status.first { $0.name == "first" }?.reasons.map(\.description), ["cmd changed", "param a.n changed (2 -> 1)"])
    }

    func testSetParsesYAMLScalarsAndRejectsUnknownKeys() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        XCTAssertEqual(try ws.pipeline(set: ["a.n=0.5"]).params["a"]?["n"], .double(0.5))
        XCTAssertEqual(try ws.pipeline(set: ["a.n='7'"]).params["a"]?["n"], .string("7"))
        XCTAssertEqual(try ws.pipeline(set: ["b.m=two words"]).stage(named: "second")?.command,
                       "cat out1/a.txt input.txt > second.txt && echo 'two words' >> second.txt && echo second >> runs.log")
        let message = pipelineErrorMessage { _ = try ws.pipeline(set: ["a.zzz=1"]) }
        XCTAssertTrue(message.contains("unknown param `a.zzz`"), message)
        let noEquals = pipelineErrorMessage { _ = try ws.pipeline(set: ["a.n"]) }
        XCTAssertTrue(noEquals.contains("group.key=value"), noEquals)
    }

    func testModifiedOrMissingOutsAndDepsMakeStagesStaleWithTheRightReason() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        func reasons(_ name: String) throws -> [StaleReason] {
            try ws.runner().status().first { $0.name == name }?.reasons ?? []
        }

        try ws.write("second.txt", "tampered\n")
        XCTAssertEqual(try reasons("second"), [.outModified(path: "second.txt", detail: "size 11 -> 9 bytes")])
        XCTAssertEqual(try reasons("third"), [.depChanged(path: "second.txt", detail: "size 11 -> 9 bytes"),
                                              .upstream(stage: "second", ran: false)])
        XCTAssertEqual(try reasons("first"), [])
        try ws.run()
        XCTAssertEqual(try reasons("second"), [])

        try ws.write("out1/a.txt", "9\n")
        XCTAssertEqual(try reasons("first"), [.outModified(path: "out1", detail: "a.txt modified")])
        try ws.write("out1/extra.txt", "x")
        XCTAssertEqual(try reasons("first"), [.outModified(path: "out1", detail: "extra.txt added, a.txt modified")])
        try FileManager.default.removeItem(at: ws.dir.appendingPathComponent("out1"))
        XCTAssertEqual(try reasons("first"), [.outMissing(path: "out1")])
        try ws.run()

        try ws.write("input.txt", "new input\n")
        XCTAssertEqual(try reasons("first"), [.depChanged(path: "input.txt", detail: "size 3 -> 10 bytes")])
        XCTAssertEqual(try reasons("second").first, .depChanged(path: "input.txt", detail: "size 3 -> 10 bytes"))
        XCTAssertTrue(try reasons("second").contains(.upstream(stage: "first", ran: false)))
        let report = try ws.run()
        XCTAssertEqual(report.ran, ["first", "second", "third"])
    }

    func testDryRunPrintsTheResolvedCommandsAndRunsNothing() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        let report = try ws.run(RunOptions(dry: true), set: ["a.n=42"])
        XCTAssertEqual(report.wouldRun, ["side", "first", "second", "third"])
        XCTAssertEqual(report.ran, [])
        XCTAssertTrue(ws.logs.contains("- first: would run (never run)\n  $ mkdir -p out1 && echo 42 > out1/a.txt && echo first >> runs.log"), "\(ws.logs)")
        XCTAssertFalse(ws.exists("runs.log"))
        XCTAssertFalse(ws.exists("pipeline.lock"))
        XCTAssertFalse(ws.exists("out1"))
        // Downstream of a would-run stage would run too.
        XCTAssertEqual(report.outcome("third")?.reasons, [.neverRun, .upstream(stage: "second", ran: false)])
    }

    func testTargetsRunWithTheirStaleUpstreamOnly() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        let report = try ws.run(RunOptions(targets: ["second"]))
        XCTAssertEqual(report.ran, ["first", "second"])
        XCTAssertEqual(report.outcome("third")?.action, .notSelected)
        XCTAssertEqual(report.outcome("side")?.action, .notSelected)
        XCTAssertTrue(ws.logs.contains("- third: not selected"))
        let unknown = pipelineErrorMessage { try ws.run(RunOptions(targets: ["nope"])) }
        XCTAssertTrue(unknown.contains("no stage named `nope`") && unknown.contains("side, first, second, third"), unknown)
    }

    func testSingleRunsOnlyTheNamedStage() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        // Without upstream, the missing input is reported with the stage that writes it.
        let missing = pipelineErrorMessage { try ws.run(RunOptions(targets: ["second"], single: true)) }
        XCTAssertTrue(missing.contains("stage second: dep `out1/a.txt` is missing") && missing.contains("pipeline run first"), missing)

        try ws.run()
        let report = try ws.run(RunOptions(targets: ["second"], single: true, force: true), set: ["a.n=5"])
        XCTAssertEqual(report.ran, ["second"])
        XCTAssertEqual(report.outcome("first")?.action, .notSelected, "stale upstream is left alone")
        XCTAssertEqual(ws.runsLog.suffix(1), ["second"])
    }

    func testForceRunsUpToDateStages() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        let one = try ws.run(RunOptions(targets: ["third"], force: true))
        XCTAssertEqual(one.ran, ["third"])
        XCTAssertEqual(one.outcome("third")?.reasons, [.forced])
        XCTAssertEqual(one.outcome("first")?.action, .upToDate)
        let all = try ws.run(RunOptions(force: true))
        XCTAssertEqual(all.ran, ["side", "first", "second", "third"])
    }

    func testDownstreamRunsTheStageAndEverythingAfterIt() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        let report = try ws.run(RunOptions(targets: ["second"], force: true, downstream: true))
        XCTAssertEqual(report.ran, ["second", "third"])
        XCTAssertEqual(report.outcome("third")?.reasons, [.upstream(stage: "second", ran: true)])
        XCTAssertEqual(report.outcome("first")?.action, .notSelected)
        XCTAssertEqual(report.outcome("side")?.action, .notSelected)
    }

    func testFailingStageStopsTheRunAndKeepsEarlierLockEntries() throws {
        let ws = try Workspace("""
        stages:
          ok:
            cmd: echo ok > ok.txt
            outs: [ok.txt]
          bad:
            cmd: cat ok.txt > bad.txt && exit 3
            deps: [ok.txt]
            outs: [bad.txt]
          after:
            cmd: cp bad.txt after.txt
            deps: [bad.txt]
            outs: [after.txt]
        """)
        XCTAssertThrowsError(try ws.run()) { error in
            guard let failure = error as? StageFailedError else { return XCTFail("\(error)") }
            XCTAssertEqual(failure.stage, "bad")
            XCTAssertEqual(failure.exitCode, 3)
            XCTAssertTrue(failure.description.contains("stage bad failed with exit code 3"), failure.description)
        }
        let lock = try ws.lock()
        XCTAssertNotNil(lock.stages["ok"])
        XCTAssertNil(lock.stages["bad"])
        XCTAssertFalse(ws.exists("after.txt"))
        // The next run picks up where it stopped.
        try ws.write("pipeline.yaml", try XCTUnwrap(ws.read("pipeline.yaml")).replacingOccurrences(of: " && exit 3", with: ""))
        let report = try ws.run()
        XCTAssertEqual(report.ran, ["bad", "after"])
        XCTAssertEqual(report.outcome("ok")?.action, .upToDate)
    }

    func testLockForgetsStagesRemovedFromTheFile() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        try ws.run()
        XCTAssertNotNil(try ws.lock().stages["side"])
        let withoutSide = chainYAML.replacingOccurrences(of: """
          side:
            desc: reads a whole subtree of params
            cmd: echo side > side.txt && echo side >> runs.log
            params: [a.words]
            outs: [side.txt]

        """, with: "")
        try ws.write("pipeline.yaml", withoutSide)
        try ws.run(RunOptions(targets: ["first"], force: true))
        XCTAssertNil(try ws.lock().stages["side"])
        XCTAssertNotNil(try ws.lock().stages["third"])
    }

    func testStageThatDoesNotWriteItsOutIsAnError() throws {
        let ws = try Workspace("""
        stages:
          lazy:
            cmd: "true"
            outs: [never.txt]
        """)
        let message = pipelineErrorMessage { try ws.run() }
        XCTAssertTrue(message.contains("stage lazy finished but did not write its out `never.txt`"), message)
        XCTAssertNil(try ws.lock().stages["lazy"])
    }

    func testConcurrentRunIsRefusedNamingThePid() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": "in\n"])
        let held = try RunLock.acquire(in: ws.dir)
        let message = pipelineErrorMessage { try ws.run() }
        XCTAssertTrue(message.contains("another `pipeline run` (pid \(getpid())) is already running"), message)
        XCTAssertFalse(ws.exists("runs.log"))
        // Status and dry runs only read, so they still work.
        XCTAssertEqual(try ws.runner().status().count, 4)
        XCTAssertEqual(try ws.run(RunOptions(dry: true)).wouldRun.count, 4)
        held.release()
        XCTAssertEqual(try ws.run().ran.count, 4)
    }

    func testHashCacheSparesUnchangedFiles() throws {
        let ws = try Workspace(chainYAML, files: ["input.txt": String(repeating: "big input\n", count: 1000)])
        // The files are seconds old at most, so the racy-mtime guard is switched off here (tested below).
        let firstHasher = CountingHasher()
        try ws.runner(hasher: firstHasher, racyWindowNs: 0).run()
        XCTAssertFalse(firstHasher.hashed.isEmpty)
        XCTAssertTrue(ws.exists(".pipeline-cache/hashes.json"))

        // A new runner (a new process, as far as the cache knows) hashes nothing when nothing changed.
        let second = CountingHasher()
        let status = try ws.runner(hasher: second, racyWindowNs: 0).status()
        XCTAssertTrue(status.allSatisfy { !$0.isStale })
        XCTAssertEqual(second.hashed, [])

        // A changed file is hashed again, once, even though two stages read it.
        try ws.write("input.txt", "changed\n")
        let third = CountingHasher()
        _ = try ws.runner(hasher: third, racyWindowNs: 0).status()
        XCTAssertEqual(third.hashed, ["input.txt"])
    }

    func testFileRewrittenInTheSameClockTickIsHashedAgain() throws {
        let dir = try TestPaths.makeTempDir("racy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.txt")
        try Data("aaaa".utf8).write(to: url)
        var before = stat()
        XCTAssertEqual(stat(url.path, &before), 0)
        let cache = HashCache(root: dir, cacheURL: nil, hasher: CountingHasher())
        XCTAssertEqual(try cache.fileRecord("f.txt").sha256, FileHash.sha256(of: "aaaa"))

        // Same size, same inode, and the mtime set back: only the racy guard can notice.
        let handle = try FileHandle(forWritingTo: url)
        handle.write(Data("bbbb".utf8))
        try handle.close()
        var times = [before.st_atim, before.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, url.path, &times, 0), 0)
        XCTAssertEqual(try cache.fileRecord("f.txt").sha256, FileHash.sha256(of: "bbbb"))

        // Without the guard the same rewrite goes unnoticed: this is what the guard is for.
        cache.racyWindowNs = 0
        let again = try FileHandle(forWritingTo: url)
        again.write(Data("cccc".utf8))
        try again.close()
        XCTAssertEqual(utimensat(AT_FDCWD, url.path, &times, 0), 0)
        XCTAssertEqual(try cache.fileRecord("f.txt").sha256, FileHash.sha256(of: "bbbb"))
    }

    func testPipelineFileNameAndPlaceholders() throws {
        let ws = try Workspace("""
        params:
          g:
            flag: true
            ratio: 0.25
            name: "007"
        stages:
          s:
            cmd: echo ${pipeline.file} ${g.flag} ${ g.ratio } ${g.name} > s.txt
            outs: [./s.txt]
        """, name: "other.yaml")
        let p = try Pipeline.load(url: ws.file)
        XCTAssertEqual(p.stages[0].command, "echo other.yaml true 0.25 007 > s.txt")
        XCTAssertEqual(p.stages[0].outs, ["s.txt"])
        XCTAssertEqual(p.file.lockURL.lastPathComponent, "other.lock")
    }

    /// Deps and outs may name params (`--set` then changes the path the stage reads), unquoted,
    /// so a path with a space stays one path; the edge to the producing stage follows the value.
    func testDepsAndOutsMayNameParams() throws {
        let ws = try Workspace("""
        params:
          data:
            input: my file.csv
            out: prepared
        stages:
          make:
            cmd: echo x > 'my file.csv'; echo y > other.csv
            outs: [my file.csv, other.csv]
          prepare:
            cmd: cat ${data.input} > x
            deps:
              - ${data.input}
            outs: ["${data.out}"]
        """)
        let p = try Pipeline.load(url: ws.file)
        XCTAssertEqual(p.stage(named: "prepare")?.deps, ["my file.csv"])
        XCTAssertEqual(p.stage(named: "prepare")?.outs, ["prepared"])
        XCTAssertEqual(p.stage(named: "prepare")?.command, "cat 'my file.csv' > x")
        XCTAssertEqual(p.stage(named: "prepare")?.upstream, ["make"])
        let other = try Pipeline.load(url: ws.file, overrides: ["data.input=other.csv"])
        XCTAssertEqual(other.stage(named: "prepare")?.deps, ["other.csv"])
    }

    func testTheRepositoryPipelineFilePlans() throws {
        let url = TestPaths.repoRoot.appendingPathComponent("pipeline.yaml")
        let p = try Pipeline.plan(try PipelineFile.load(url: url), checkDisk: false)
        XCTAssertEqual(p.stages.map(\.name), ["fetch", "prepare", "weights", "train", "evaluate", "export"])
        XCTAssertEqual(p.stage(named: "prepare")?.upstream, ["fetch"])
        XCTAssertEqual(Set(p.stage(named: "train")?.upstream ?? []), ["fetch", "prepare", "weights"])
        XCTAssertEqual(Set(p.stage(named: "evaluate")?.upstream ?? []), ["prepare", "train"])
        XCTAssertEqual(p.stage(named: "fetch")?.command, "fetch --config pipeline.yaml --out data/raw")
        XCTAssertTrue(p.stage(named: "prepare")!.command.contains("--seed 123 --train-frac 0.7 --validation-frac 0.1 --max-length longest"))
        guard case .array(let sources)? = p.stage(named: "fetch")?.params["fetch.sources"] else { return XCTFail("fetch.sources") }
        XCTAssertEqual(sources.count, 3)
    }

    /// Both pipelines' `export` stages write nothing but a note by default (export.to none), and
    /// run the `export` tool (through `env`: `export` is a shell builtin) with export.to hf.
    func testExportStagesAreOptional() throws {
        let chapter6 = TestPaths.repoRoot.appendingPathComponent("pipeline.yaml")
        let instruct = TestPaths.repoRoot.appendingPathComponent("pipelines/instruct.yaml")
        for (url, model) in [(chapter6, "data/train"), (instruct, "../data/instruct-train")] {
            let off = try XCTUnwrap(try Pipeline.load(url: url, checkDisk: false).stage(named: "export")?.command)
            XCTAssertTrue(off.hasPrefix("if [ none = none ]; then rm -rf "), off)
            let on = try XCTUnwrap(try Pipeline.load(url: url, overrides: ["export.to=hf"], checkDisk: false).stage(named: "export"))
            XCTAssertTrue(on.command.contains("else env export --model \(model) --to hf "), on.command)
            XCTAssertTrue(on.deps.contains(model), "\(on.deps)")
        }
        let merged = try Pipeline.load(url: instruct, overrides: ["export.to=hf", "export.lora=merge"], checkDisk: false)
        XCTAssertTrue(try XCTUnwrap(merged.stage(named: "export")?.command).contains("$( [ merge = merge ] && echo --merge )"))
        let adapter = try Pipeline.load(url: chapter6, overrides: ["export.to=hf", "export.lora=adapter"], checkDisk: false)
        XCTAssertTrue(try XCTUnwrap(adapter.stage(named: "export")?.command).contains("$( [ adapter = merge ] && echo --merge )"))
    }

    /// Both pipelines' `weights` stages fetch only train.model's file (weights.yaml names its
    /// sources like the model sizes), and nothing for random weights.
    func testWeightsStagesFetchTheTrainModelsSize() throws {
        let instruct = TestPaths.repoRoot.appendingPathComponent("pipelines/instruct.yaml")
        let p = try Pipeline.load(url: instruct, checkDisk: false)
        XCTAssertEqual(p.stages.map(\.name), ["fetch", "prepare", "weights", "train", "evaluate", "export"])
        XCTAssertEqual(Set(p.stage(named: "train")?.upstream ?? []), ["prepare", "weights"])
        let weights = try XCTUnwrap(p.stage(named: "weights")?.command)
        XCTAssertTrue(weights.contains("if [ pretrained = pretrained ]"), weights)
        XCTAssertTrue(weights.contains("fetch --config ../weights.yaml --out ../data/instruct-weights --only gpt2-medium"), weights)
        XCTAssertTrue(try XCTUnwrap(p.stage(named: "train")?.command).contains("--weights-file ../data/instruct-weights --init gpt2"))
        let large = try Pipeline.load(url: instruct, overrides: ["train.model=gpt2-large"], checkDisk: false)
        XCTAssertTrue(try XCTUnwrap(large.stage(named: "weights")?.command).contains("--only gpt2-large"))
        let random = try Pipeline.load(url: instruct, overrides: ["train.weights=random"], checkDisk: false)
        XCTAssertTrue(try XCTUnwrap(random.stage(named: "weights")?.command).contains("if [ random = pretrained ]"))

        let chapter6 = try Pipeline.load(url: TestPaths.repoRoot.appendingPathComponent("pipeline.yaml"), overrides: ["train.model=gpt2-xl"],
                                         checkDisk: false)
        XCTAssertTrue(try XCTUnwrap(chapter6.stage(named: "weights")?.command)
            .contains("fetch --config weights.yaml --out data/weights --only gpt2-xl"))
        XCTAssertTrue(try XCTUnwrap(chapter6.stage(named: "train")?.command).contains("--weights-file data/weights "))
    }
}

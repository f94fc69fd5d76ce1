import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

/// Counts real hash computations, to prove the hash cache spares unchanged files.
final class CountingHasher: ContentHasher {
    private(set) var hashed: [String] = []
    func sha256(of url: URL) throws -> String {
        hashed.append(url.lastPathComponent)
        return try FileHash.sha256(of: url)
    }
}

/// A pipeline in a fresh temporary directory, with helpers to run it and look at the results.
final class Workspace {
    let dir: URL
    let file: URL
    var logs: [String] = []

    init(_ yaml: String, name: String = "pipeline.yaml", files: [String: String] = [:]) throws {
        dir = try TestPaths.makeTempDir("runner")
        file = dir.appendingPathComponent(name)
        try write(name, yaml)
        for (path, text) in files { try write(path, text) }
    }

    func write(_ path: String, _ text: String) throws {
        let url = dir.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func read(_ path: String) -> String? {
        try? String(contentsOf: dir.appendingPathComponent(path), encoding: .utf8)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: dir.appendingPathComponent(path).path) }

    /// Lines of `runs.log`, which the test stages append their name to.
    var runsLog: [String] { (read("runs.log") ?? "").split(separator: "\n").map(String.init) }

    func pipeline(set overrides: [String] = []) throws -> Pipeline {
        try Pipeline.load(url: file, overrides: overrides)
    }

    func runner(set overrides: [String] = [], hasher: ContentHasher = SHA256FileHasher()) throws -> Runner {
        let runner = Runner(pipeline: try pipeline(set: overrides), hasher: hasher) { [weak self] line in
            self?.logs.append(line)
        }
        runner.childOutput = FileHandle(forWritingAtPath: "/dev/null")
        return runner
    }

    @discardableResult
    func run(_ options: RunOptions = RunOptions(), set overrides: [String] = []) throws -> RunReport {
        try runner(set: overrides).run(options)
    }

    func lock() throws -> LockFile { try LockFile.read(from: dir.appendingPathComponent("pipeline.lock")) }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

/// A four-stage pipeline written out of order: side (independent), first -> second -> third.
let chainYAML = """
params:
  a:
    n: 1
    words: [x, y]
  b:
    m: hello
stages:
  third:
    cmd: wc -c < second.txt > third.txt && echo third >> runs.log
    deps: [second.txt]
    outs: [third.txt]
  side:
    desc: reads a whole subtree of params
    cmd: echo side > side.txt && echo side >> runs.log
    params: [a.words]
    outs: [side.txt]
  second:
    cmd: cat out1/a.txt input.txt > second.txt && echo ${b.m} >> second.txt && echo second >> runs.log
    deps: [out1/a.txt, input.txt]
    params: [b.m]
    outs: [second.txt]
  first:
    cmd: mkdir -p out1 && echo ${a.n} > out1/a.txt && echo first >> runs.log
    deps: [input.txt]
    params: [a.n]
    outs: [out1]
"""

func actions(_ report: RunReport) -> [String: StageOutcome.Action] {
    Dictionary(uniqueKeysWithValues: report.outcomes.map { ($0.name, $0.action) })
}

/// The message of a thrown `PipelineError` (fails the test when something else is thrown).
func pipelineErrorMessage(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> String {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch let error as PipelineError {
        return error.description
    } catch {
        XCTFail("expected a PipelineError, got \(error)", file: file, line: line)
        return ""
    }
}

import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

/// Every kind of bad pipeline file gives an error that names the file, the line or key, and the problem.
final class PipelineFileErrorTests: XCTestCase {
    func error(_ yaml: String, files: [String: String] = [:], set: [String] = []) throws -> String {
        let ws = try Workspace(yaml, files: files)
        let path = ws.file.path
        let message = pipelineErrorMessage { _ = try ws.pipeline(set: set) }
        XCTAssertTrue(message.hasPrefix(path), "names the file: \(message)")
        return message.replacingOccurrences(of: path, with: "FILE")
    }

    func testUnknownTopLevelKey() throws {
        let m = try error("""
        params: {}
        stages: {}
        extra: 1
        """)
        XCTAssertEqual(m, "FILE:3: unknown key `extra` at the top level (expected one of: params, stages)")
    }

    func testUnknownStageKey() throws {
        let m = try error("""
        stages:
          a:
            cmd: echo
            output: [x]
        """)
        XCTAssertEqual(m, "FILE:4: unknown key `output` in stage `a` (expected one of: cmd, deps, params, run_params, outs, desc)")
    }

    func testMissingCmdAndWrongTypes() throws {
        XCTAssertEqual(try error("stages:\n  a:\n    outs: [x]\n"), "FILE:2: stage `a` has no `cmd`")
        XCTAssertEqual(try error("stages:\n  a:\n    cmd: echo\n    deps: x\n"), "FILE:4: stage `a`: `deps` must be a list of strings")
        XCTAssertEqual(try error("stages:\n  a:\n    cmd: echo\n  a:\n    cmd: echo\n"), "FILE:4: duplicate key `a` in `stages`")
        XCTAssertTrue(try error("stages:\n  a: [\n").contains("not valid YAML"))
    }

    func testCycle() throws {
        let m = try error("""
        stages:
          a:
            cmd: cp b.txt a.txt
            deps: [b.txt]
            outs: [a.txt]
          b:
            cmd: cp a.txt b.txt
            deps: [a.txt]
            outs: [b.txt]
        """)
        XCTAssertTrue(m.hasPrefix("FILE: the stages form a cycle: "), m)
        XCTAssertTrue(m.contains("a -> b -> a") || m.contains("b -> a -> b"), m)
    }

    func testDepThatNothingProducesAndDoesNotExist() throws {
        let yaml = """
        stages:
          a:
            cmd: cat in.txt > a.txt
            deps: [in.txt]
            outs: [a.txt]
        """
        let m = try error(yaml)
        XCTAssertTrue(m.hasPrefix("FILE:2: stage `a`: dep `in.txt` does not exist and no stage lists it in `outs`"), m)
        // The same file is fine once the dep exists.
        let ws = try Workspace(yaml, files: ["in.txt": "x"])
        XCTAssertNoThrow(try ws.pipeline())
    }

    func testTwoStagesWritingTheSameOut() throws {
        let m = try error("""
        stages:
          a:
            cmd: echo a > x.txt
            outs: [x.txt]
          b:
            cmd: echo b > x.txt
            outs: [./x.txt]
        """)
        XCTAssertTrue(m.hasPrefix("FILE:5: stages `a` and `b` write the same path: both write `x.txt`"), m)
    }

    func testOutInsideAnotherStagesOut() throws {
        let m = try error("""
        stages:
          a:
            cmd: mkdir -p data && echo a > data/a.txt
            outs: [data]
          b:
            cmd: echo b > data/b.txt
            outs: [data/b.txt]
        """)
        XCTAssertTrue(m.contains("`data/b.txt` and `data` overlap"), m)
    }

    func testWholeDirectoryAsOutIsRejected() throws {
        let m = try error("stages:\n  a:\n    cmd: echo > x\n    outs: [./]\n")
        XCTAssertTrue(m.contains("the pipeline directory itself cannot be an out"), m)
    }

    func testUnknownParamInParamsList() throws {
        let m = try error("""
        params:
          train:
            lr: 0.1
        stages:
          a:
            cmd: echo > a.txt
            params: [train.epochs]
            outs: [a.txt]
        """)
        XCTAssertTrue(m.hasPrefix("FILE:5: stage `a` lists param `train.epochs`, which is not defined under `params:`"), m)
        XCTAssertTrue(m.contains("known params: train.lr"), m)
    }

    func testPlaceholderNamingAMissingOrNonScalarParam() throws {
        // One param under `train`; stage `a` (line 5) echoes the placeholder.
        let cases = [
            ("lr: 0.1", "${train.epochs}", "FILE:5: stage `a`: placeholder `${train.epochs}` names a param that is not defined"),
            ("sizes: [1, 2]", "${train.sizes}", "FILE:5: stage `a`: placeholder `${train.sizes}` is a list"),
            ("opt: {lr: 1}", "${train}", "FILE:5: stage `a`: placeholder `${train}` is a map"),
        ]
        for (param, placeholder, expected) in cases {
            let m = try error("params:\n  train:\n    \(param)\nstages:\n  a:\n    cmd: echo \(placeholder) > a.txt\n    outs: [a.txt]\n")
            XCTAssertTrue(m.hasPrefix(expected), m)
        }
    }

    func testReservedGroupAndBuiltinOverride() throws {
        let reserved = try error("params:\n  pipeline:\n    file: x\nstages: {}\n")
        XCTAssertTrue(reserved.contains("`pipeline` is reserved"), reserved)
        let ws = try Workspace("stages: {}\n")
        let m = pipelineErrorMessage { _ = try ws.pipeline(set: ["pipeline.file=x"]) }
        XCTAssertTrue(m.contains("is a builtin and cannot be set"), m)
    }
}

import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

/// `pipeline experiment`: presets run in their own directories, stage times, the summary table,
/// and the real experiments/ch06.yaml against pipeline.yaml.
final class ExperimentTests: XCTestCase {
    /// A two-stage pipeline whose "evaluate" writes a metrics.json from a param, and three presets.
    func workspace() throws -> Workspace {
        try Workspace("""
        params:
          train:
            weights: pretrained
            acc: 0.5
        stages:
          train:
            cmd: mkdir -p data/train && echo ${train.weights} > data/train/w.txt && cat extra.yaml >> data/train/w.txt && echo train >> ../../runs.log
            deps: [extra.yaml]
            params: [train.weights]
            outs: [data/train]
          evaluate:
            cmd: >-
              mkdir -p data/eval && printf '{"test": {"accuracy": %s}, "train": {"accuracy": 1.0}}' ${train.acc} > data/eval/metrics.json
            deps: [data/train]
            params: [train.acc]
            outs: [data/eval]
        """, files: ["extra.yaml": "side file\n", "exp/presets.yaml": """
        pipeline: ../pipeline.yaml
        runs: ../runs
        summary:
          done: data/eval/metrics.json
          settings:
            - param: train.weights
              unless: pretrained
            - {param: train.acc, format: percent, text: "acc {}", suffix: {file: data/train/w.txt, key: x}}
          metrics:
            - {title: train, file: data/eval/metrics.json, key: train.accuracy, format: percent}
            - {title: test, file: data/eval/metrics.json, key: test.accuracy}
          wall:
            stages: [evaluate]
        presets:
          - name: base
            row: 1
            settings: the defaults
            book: {test: 95.0}
          - name: random
            settings: random weights
            set: {train.weights: random, train.acc: "0.75"}
          - name: nope
            row: 17
            settings: impossible
            unsupported: the model always applies the causal mask
        """])
    }

    func testPresetsRunInTheirOwnDirectoriesAndSummarise() throws {
        let ws = try workspace()
        let file = try ExperimentFile.load(ws.dir.appendingPathComponent("exp/presets.yaml"))
        XCTAssertEqual(file.presets.map(\.name), ["base", "random", "nope"])
        XCTAssertEqual(try file.select(["all"]).map(\.name), ["base", "random"])
        var lines: [String] = []
        let devNull = FileHandle(forWritingAtPath: "/dev/null")
        for p in try file.select(["base", "random"]) {
            let record = try XCTUnwrap(try Experiments.run(file, preset: p, toolDirectory: nil, childOutput: devNull) { lines.append($0) })
            XCTAssertEqual(record.stagesRun, ["train", "evaluate"])
            XCTAssertNotNil(record.stageSeconds["train"])
            XCTAssertNotNil(record.stageSeconds["evaluate"])
        }
        // Separate directories with a copy of the pipeline file and the side file it reads.
        XCTAssertEqual(ws.read("runs/base/data/train/w.txt"), "pretrained\nside file\n")
        XCTAssertEqual(ws.read("runs/random/data/train/w.txt"), "random\nside file\n")
        XCTAssertTrue(ws.exists("runs/random/pipeline.lock"))
        XCTAssertTrue(ws.exists("runs/random/experiment.json"))
        XCTAssertEqual(ws.read("runs.log"), "train\ntrain\n")
        XCTAssertTrue(lines.contains { $0.hasPrefix("== random: random weights") }, "\(lines)")

        // A second run finds everything up to date and keeps the record.
        let before = ws.read("runs/random/experiment.json")
        XCTAssertNil(try Experiments.run(file, preset: try file.preset("random"), toolDirectory: nil, childOutput: devNull) { _ in })
        XCTAssertEqual(ws.read("runs/random/experiment.json"), before)
        XCTAssertEqual(ws.read("runs.log"), "train\ntrain\n")

        // An extra --set makes the run stale again (the lock records the params).
        XCTAssertNotNil(try Experiments.run(file, preset: try file.preset("base"), extra: ["train.acc=0.25"], toolDirectory: nil,
                                            childOutput: devNull) { _ in })
        XCTAssertEqual(ws.read("runs.log"), "train\ntrain\n", "only evaluate depends on train.acc")

        XCTAssertThrowsError(try Experiments.run(file, preset: try file.preset("nope"), toolDirectory: nil) { _ in }) {
            XCTAssertTrue("\($0)".contains("cannot run here: the model always applies the causal mask"), "\($0)")
        }
        XCTAssertThrowsError(try file.select(["missing"])) { XCTAssertTrue("\($0)".contains("one of: base, random, nope"), "\($0)") }

        // The columns the file's `summary` declares: settings parts (a default hidden, a format, a
        // suffix from a file that is not JSON: left out), the metric cells, the timed stage.
        let rows = try ExperimentSummary.rows(file, includeMissing: true)
        XCTAssertEqual(rows.map(\.preset), ["base", "random", "nope"])
        XCTAssertEqual(rows[0].metrics, ["100.00%", "0.25"])
        XCTAssertEqual(rows[0].settings, "acc 25.00%")
        XCTAssertEqual(rows[0].bookTest, 95.0)
        XCTAssertEqual(rows[1].metrics, ["100.00%", "0.75"])
        XCTAssertEqual(rows[1].settings, "random, acc 75.00%")
        XCTAssertTrue(rows[1].wall.hasSuffix(" s (evaluate 0)"), rows[1].wall)
        XCTAssertEqual(rows[2].metrics, ["-", "-"])
        XCTAssertEqual(rows[2].wall, "not supported: the model always applies the causal mask")
        let table = try ExperimentSummary.table(file, includeMissing: true)
        XCTAssertTrue(table.hasPrefix("| preset | book row | settings | train | test | wall time | book's test acc. |\n|---|---|---|---|---|---|---|\n"), table)
        XCTAssertTrue(table.contains("| base | 1 | acc 25.00% | 100.00% | 0.25 | "), table)
        XCTAssertTrue(table.contains(" | 95.00% |\n"), table)
        XCTAssertTrue(table.hasSuffix("| nope | 17 | impossible | - | - | not supported: the model always applies the causal mask | - |\n"), table)
    }

    func testBadExperimentFilesAreClearErrors() throws {
        let ws = try workspace()
        try ws.write("bad.yaml", "pipeline: p.yaml\nruns: r\npresets:\n  - name: a b\n    settings: x\n")
        XCTAssertThrowsError(try ExperimentFile.load(ws.dir.appendingPathComponent("bad.yaml"))) {
            XCTAssertTrue("\($0)".contains("may only use letters"), "\($0)")
        }
        try ws.write("dup.yaml", "pipeline: p.yaml\nruns: r\npresets:\n  - {name: a, settings: x}\n  - {name: a, settings: y}\n")
        XCTAssertThrowsError(try ExperimentFile.load(ws.dir.appendingPathComponent("dup.yaml"))) {
            XCTAssertTrue("\($0)".contains("listed twice"), "\($0)")
        }
        try ws.write("none.yaml", "presets: 3\n")
        XCTAssertThrowsError(try ExperimentFile.load(ws.dir.appendingPathComponent("none.yaml"))) {
            XCTAssertTrue("\($0)".contains("not an experiments file"), "\($0)")
        }
    }

    /// Every preset of the committed experiments/ch06.yaml overrides params that pipeline.yaml has
    /// (the LoRA rows' train.lora_rank / train.lora_alpha arrive with the lora branch).
    func testChapter6PresetsMatchPipelineParams() throws {
        let file = try ExperimentFile.load(TestPaths.repoRoot.appendingPathComponent("experiments/ch06.yaml"))
        XCTAssertEqual(file.pipeline.path, TestPaths.repoRoot.appendingPathComponent("pipeline.yaml").standardizedFileURL.path)
        XCTAssertEqual(file.presets.compactMap(\.row), Array(1...19))
        XCTAssertEqual(try file.preset("row10-random-all").book?.test, 93.67)
        let known = try Pipeline.load(url: file.pipeline, checkDisk: false)
        for p in file.presets where p.unsupported == nil {
            let overrides = p.overrides.filter { !$0.hasPrefix("train.lora_") }
            XCTAssertNoThrow(try Pipeline.load(url: file.pipeline, overrides: overrides, checkDisk: false), p.name)
        }
        XCTAssertFalse(known.stages.isEmpty)
        // The summary reads params pipeline.yaml has and times stages it has.
        let summary = try XCTUnwrap(file.summary)
        let params = summary.settings.flatMap { [$0.param] + ($0.suffix?.param.map { [$0] } ?? []) }
        XCTAssertEqual(params.count, 7)
        for param in params {
            let parts = param.split(separator: ".").map(String.init)
            XCTAssertNotNil(known.file.params[parts[0]]?[parts[1]], param)
        }
        XCTAssertEqual(summary.wall.stages.filter { name in known.stages.contains { $0.name == name } }, ["prepare", "train", "evaluate"])
        XCTAssertEqual(summary.metrics.map(\.title), ["train acc.", "validation acc.", "test acc."])
    }
}

import ArtifactKit
import Foundation
@testable import PipelineRunner
import TestSupport
import XCTest

/// Fake run directories (a lock file, metrics.json, the prepared and train manifests,
/// experiment.json) summarised with the committed experiments/ch06.yaml.
final class ExperimentSummaryTests: XCTestCase {
    /// A lock file as `pipeline run` wrote it before `FileEntry` became `FileRecord`: a directory out
    /// with its per-file contents, params of each JSON type.
    static let rowOneLock = """
    {
      "schema" : 1,
      "stages" : {
        "evaluate" : {
          "cmd" : "evaluate --model data/train",
          "deps" : [
            {
              "path" : "data/train",
              "sha256" : "6d0f5e6b8c1f0f4b2e9a4d7c3b1a0f9e8d7c6b5a49382716f5e4d3c2b1a09f8e",
              "size" : 12
            }
          ],
          "outs" : [
            {
              "contents" : [
                {
                  "path" : "metrics.json",
                  "sha256" : "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                  "size" : 120
                }
              ],
              "files" : 1,
              "path" : "data/eval",
              "sha256" : "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
              "size" : 120
            }
          ],
          "params" : {

          }
        },
        "prepare" : {
          "cmd" : "prepare --max-length longest",
          "deps" : [

          ],
          "outs" : [
            {
              "contents" : [
                {
                  "path" : "manifest.json",
                  "sha256" : "1111111111111111111111111111111111111111111111111111111111111111",
                  "size" : 700
                },
                {
                  "path" : "train.bin",
                  "sha256" : "2222222222222222222222222222222222222222222222222222222222222222",
                  "size" : 4096
                }
              ],
              "files" : 2,
              "path" : "data/prepared",
              "sha256" : "3333333333333333333333333333333333333333333333333333333333333333",
              "size" : 4796
            }
          ],
          "params" : {
            "prepare.max_length" : "longest",
            "prepare.seed" : 123
          }
        },
        "train" : {
          "cmd" : "train",
          "deps" : [
            {
              "path" : "data/prepared/train.bin",
              "sha256" : "2222222222222222222222222222222222222222222222222222222222222222",
              "size" : 4096
            }
          ],
          "outs" : [
            {
              "contents" : [
                {
                  "path" : "model.safetensors",
                  "sha256" : "4444444444444444444444444444444444444444444444444444444444444444",
                  "size" : 12
                }
              ],
              "files" : 1,
              "path" : "data/train",
              "sha256" : "6d0f5e6b8c1f0f4b2e9a4d7c3b1a0f9e8d7c6b5a49382716f5e4d3c2b1a09f8e",
              "size" : 12
            }
          ],
          "params" : {
            "train.average_embeddings" : false,
            "train.epochs" : 5,
            "train.lr" : 5e-05,
            "train.model" : "gpt2-small",
            "train.token_position" : "last",
            "train.trainable_layers" : "last_block",
            "train.weights" : "pretrained"
          }
        }
      }
    }

    """

    /// A temporary directory removed when the test ends.
    func temporaryDirectory(_ label: String) throws -> URL {
        let dir = try TestPaths.makeTempDir(label)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Writes `text` to `path` under `dir`, making the directories.
    static func write(_ text: String, _ path: String, in dir: URL) throws {
        let url = dir.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    /// A lock file with one stage holding `params` (JSON text of a params object).
    static func lock(_ params: String) -> String {
        "{\"schema\": 1, \"stages\": {\"train\": {\"cmd\": \"train\", \"deps\": [], \"outs\": [], \"params\": \(params)}}}\n"
    }

    static func metrics(train: Double?, validation: Double?, test: Double?) -> String {
        let splits = [("train", train), ("validation", validation), ("test", test)].compactMap { name, v in
            v.map { "\"\(name)\": {\"accuracy\": \($0), \"loss\": 0.5, \"rows\": 300}" }
        }
        return "{" + splits.joined(separator: ", ") + "}\n"
    }

    static func manifest(_ stats: String) -> String {
        """
        {"format": "x", "formatVersion": 1, "tool": "t", "toolVersion": "0.1.0", "createdAt": "2026-01-01T00:00:00Z",
         "params": {}, "inputs": [], "outputs": [], "stats": \(stats)}
        """
    }

    static func record(_ preset: String, wall: Double, stages: String) -> String {
        """
        {"preset": "\(preset)", "settings": "s", "overrides": [], "started_at": "2026-01-01T00:00:00Z",
         "wall_seconds": \(wall), "stage_seconds": \(stages), "stages_run": []}
        """
    }

    /// `root/runs/` with four run directories named after ch06.yaml presets (one not finished), and
    /// three directories elsewhere.
    static func fakeRuns(in root: URL) throws -> (runs: URL, extra: [URL]) {
        let runs = root.appendingPathComponent("runs")
        // Row 1: every settings part, the prepared manifest's max_length, experiment.json with stage times.
        let one = runs.appendingPathComponent("row01-default")
        try write(Self.rowOneLock, "pipeline.lock", in: one)
        try write(manifest("{\"max_length\": 120, \"rows\": 1046}"), "data/prepared/manifest.json", in: one)
        try write(metrics(train: 0.96634615, validation: 0.99328859, test: 0.95), "data/eval/metrics.json", in: one)
        try write(record("row01-default", wall: 183.56, stages: "{\"fetch\": 2.4, \"prepare\": 0.51, \"train\": 150.49, \"evaluate\": 30.2}"),
                  "experiment.json", in: one)
        // Row 19: average embeddings, 3 epochs, a numeric max_length without a prepared manifest,
        // no experiment.json (the train manifest's times), no validation split.
        let nineteen = runs.appendingPathComponent("row19-average-embeddings")
        try write(lock("""
        {"prepare.max_length": 64, "train.average_embeddings": true, "train.epochs": 3, "train.model": "gpt2-small",
         "train.token_position": "flexible", "train.trainable_layers": "all", "train.weights": "random"}
        """), "pipeline.lock", in: nineteen)
        try write(metrics(train: 1.0, validation: nil, test: 0.9366666), "data/eval/metrics.json", in: nineteen)
        try write(manifest("{\"wall_seconds\": 50.4, \"cache_seconds\": 10.2}"), "data/train/manifest.json", in: nineteen)
        // Not finished: no metrics.json, so no row.
        let two = runs.appendingPathComponent("row02-first-token")
        try write(lock("{\"train.token_position\": \"first\"}"), "pipeline.lock", in: two)
        // No lock: the preset's own settings text; a train manifest without cache seconds; epochs 5 hidden.
        let random = runs.appendingPathComponent("default-random")
        try write(metrics(train: 0.5, validation: 0.25, test: 0.125), "data/eval/metrics.json", in: random)
        try write(manifest("{\"wall_seconds\": 12.6}"), "data/train/manifest.json", in: random)
        // Elsewhere: one named after a preset (gets its book columns), one of no preset, one bare.
        let flexible = root.appendingPathComponent("elsewhere/row16-flexible")
        try write(lock("{\"train.token_position\": \"flexible\", \"train.epochs\": 5, \"train.average_embeddings\": false}"),
                  "pipeline.lock", in: flexible)
        try write(metrics(train: 0.9942, validation: 0.9866, test: 0.98333), "data/eval/metrics.json", in: flexible)
        try write(record("row16-flexible", wall: 20.4, stages: "{\"fetch\": 1}"), "experiment.json", in: flexible)
        let mine = root.appendingPathComponent("elsewhere/mine")
        try write(lock("{\"train.weights\": \"random\", \"train.epochs\": 10, \"prepare.max_length\": \"context\"}"),
                  "pipeline.lock", in: mine)
        try write(manifest("{\"max_length\": 1024.5}"), "data/prepared/manifest.json", in: mine)
        try write(metrics(train: 0.123456, validation: 0.5, test: nil), "data/eval/metrics.json", in: mine)
        let bare = root.appendingPathComponent("elsewhere/bare")
        try write("{}\n", "data/eval/metrics.json", in: bare)
        return (runs, [flexible, mine, bare])
    }

    static let chapter6 = TestPaths.repoRoot.appendingPathComponent("experiments/ch06.yaml")

    /// The table `pipeline experiment summary` printed for these directories before its columns moved
    /// into the experiments file (generated with that code): the same bytes now.
    static let expectedTable = """
    | preset | book row | settings | train acc. | validation acc. | test acc. | wall time | book's test acc. |
    |---|---|---|---|---|---|---|---|
    | row01-default | 1 | gpt2-small, pretrained, last_block, last, pad longest (120) | 96.63% | 99.33% | 95.00% | 184 s (prepare 1, train 150, evaluate 30) | 95.00% |
    | row19-average-embeddings | 19 | gpt2-small, random, all, flexible + average, pad 64, 3 epochs | 100.00% | - | 93.67% | train 61 s (no experiment.json) | 96.33% |
    | default-random | - | row 1 with random weights (the pipeline's offline default run) | 50.00% | 25.00% | 12.50% | train 13 s (no experiment.json) | - |
    | row16-flexible | 16 | flexible | 99.42% | 98.66% | 98.33% | 20 s | 98.33% |
    | mine | - | random, pad context, 10 epochs | 12.35% | 50.00% | - | - | - |
    | bare | - | ? | - | - | - | - | - |
    
    """

    /// The same with `--all`: every preset of ch06.yaml, "not run" and "not supported" ones too.
    static let expectedAll = """
    | preset | book row | settings | train acc. | validation acc. | test acc. | wall time | book's test acc. |
    |---|---|---|---|---|---|---|---|
    | row01-default | 1 | gpt2-small, pretrained, last_block, last, pad longest (120) | 96.63% | 99.33% | 95.00% | 184 s (prepare 1, train 150, evaluate 30) | 95.00% |
    | row02-first-token | 2 | as row 1, first token | - | - | - | not run | 75.00% |
    | row03-last-layer | 3 | as row 1, only the head trains | - | - | - | not run | 72.00% |
    | row04-last-two-blocks | 4 | as row 1, the last two blocks train | - | - | - | not run | 98.33% |
    | row05-all-layers | 5 | as row 1, every layer trains | - | - | - | not run | 96.67% |
    | row06-gpt2-medium | 6 | as row 1, gpt2-medium (355M) | - | - | - | not run | 84.67% |
    | row07-gpt2-large | 7 | as row 1, gpt2-large (774M) | - | - | - | not run | 96.67% |
    | row08-gpt2-xl | 8 | as row 1, gpt2-xl (1558M) | - | - | - | not run | 98.33% |
    | row09-gpt2-xl-all | 9 | gpt2-xl (1558M), every layer trains | - | - | - | not run | 98.67% |
    | row10-random-all | 10 | gpt2-small, random weights, last token, every layer trains, padded to 120 | - | - | - | not run | 93.67% |
    | row11-lora | 11 | as row 1, LoRA rank 16, alpha 16 (appendix E) | - | - | - | not run | 96.67% |
    | row12-gpt2-xl-lora | 12 | gpt2-xl (1558M), LoRA rank 16, alpha 8 | - | - | - | not run | 98.33% |
    | row13-context-1024 | 13 | as row 1, padded to the model's context (1024) | - | - | - | not run | 78.33% |
    | row14-no-padding-batch1 | 14 | as row 1, no padding, batch size 1 | - | - | - | not supported: the shards are always padded (prepare has no no-padding mode); row 16 (flexible) reads the same position of the same unpadded prefix | 98.00% |
    | row15-no-padding-accum8 | 15 | as row 1, no padding, batch size 1 with 8 accumulation steps | - | - | - | not supported: no gradient accumulation and no unpadded shards; row 16 (flexible) is the book's equivalent with padding | 98.33% |
    | row16-flexible | 16 | as row 1, the last real (non-padding) token | - | - | - | not run | 98.33% |
    | row17-no-causal-mask | 17 | as row 1, without the causal attention mask | - | - | - | not supported: the model always applies the causal mask | 95.33% |
    | row18-ignore-index | 18 | as row 1, ignore_index 50256 in the loss | - | - | - | not supported: no ignore_index option; with 2-class targets it changes nothing (the book gets row 1's numbers) | 95.00% |
    | row19-average-embeddings | 19 | gpt2-small, random, all, flexible + average, pad 64, 3 epochs | 100.00% | - | 93.67% | train 61 s (no experiment.json) | 96.33% |
    | default-random | - | row 1 with random weights (the pipeline's offline default run) | 50.00% | 25.00% | 12.50% | train 13 s (no experiment.json) | - |
    | default-random-flexible | - | row 16 with random weights | - | - | - | not run | - |
    | row10-flexible | - | row 10 with the last real token (random weights, every layer trains, flexible) | - | - | - | not run | - |
    
    """

    func testSummaryTableOfFakeRunDirectoriesIsUnchanged() throws {
        let file = try ExperimentFile.load(Self.chapter6)
        let (runs, extra) = try Self.fakeRuns(in: temporaryDirectory("summary"))
        XCTAssertEqual(try ExperimentSummary.table(file, runs: runs, extra: extra), Self.expectedTable)
        XCTAssertEqual(try ExperimentSummary.table(file, runs: runs, includeMissing: true), Self.expectedAll)
    }

    /// A lock file written before `FileEntry` was replaced by ArtifactKit's `FileRecord` reads back
    /// and is written again byte for byte.
    func testLockFileWrittenBeforeReadsAndWritesTheSameBytes() throws {
        let dir = try temporaryDirectory("summary-lock")
        let url = dir.appendingPathComponent("pipeline.lock")
        try Data(Self.rowOneLock.utf8).write(to: url)
        let lock = try LockFile.read(from: url)
        let prepared = try XCTUnwrap(lock.stages["prepare"]?.outs.first)
        XCTAssertEqual(prepared.files, 2)
        XCTAssertEqual(prepared.contents?.map(\.path), ["manifest.json", "train.bin"])
        XCTAssertEqual(prepared.contents?.last?.size, 4096)
        XCTAssertEqual(String(decoding: try lock.encoded(), as: UTF8.self), Self.rowOneLock)
        try lock.write(to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data(Self.rowOneLock.utf8))
    }
}

/// A missing or bad `summary:` is an error naming the experiments file and the key.
final class ExperimentSummaryErrorTests: XCTestCase {
    let head = "pipeline: p.yaml\nruns: r\npresets:\n  - {name: a, settings: x}\n"

    /// The message of loading (and summarising) an experiments file with `text` after `head`, the file's path as FILE.
    func error(_ text: String) throws -> String {
        let ws = try Workspace(head + text, name: "exp.yaml")
        let message = pipelineErrorMessage { _ = try ExperimentSummary.table(try ExperimentFile.load(ws.file)) }
        XCTAssertTrue(message.hasPrefix(ws.file.path + ": "), message)
        return message.replacingOccurrences(of: ws.file.path, with: "FILE")
    }

    func testMissingSummaryNamesTheKey() throws {
        XCTAssertEqual(try error(""), """
        FILE: no `summary` section: `experiment summary` reads its columns from it
          hint: add `summary:` with `done`, `settings`, `metrics` and `wall` (docs/pipeline.md "Experiments")
        """)
        // The other subcommands do not need it.
        let ws = try Workspace(head, name: "exp.yaml")
        XCTAssertEqual(try ExperimentFile.load(ws.file).presets.map(\.name), ["a"])
    }

    func testBadSummaryKeysAreNamed() throws {
        let hint = "\n  hint: see the `summary:` keys in docs/pipeline.md \"Experiments\""
        XCTAssertEqual(try error("summary: {settings: []}\n"), "FILE: `summary.done` is missing" + hint)
        XCTAssertEqual(try error("summary: {done: m.json, metrics: {title: t}}\n"), "FILE: `summary.metrics` is not a list" + hint)
        XCTAssertEqual(try error("summary:\n  done: m.json\n  metrics:\n    - {title: a, file: m.json, key: a}\n    - {file: m.json, key: b}\n"),
                       "FILE: `summary.metrics[1].title` is missing" + hint)
        XCTAssertEqual(try error("summary:\n  done: m.json\n  metrics:\n    - {title: a, file: m.json, key: a, format: percentage}\n"),
                       "FILE: `summary.metrics[0].format`: unknown format `percentage` (expected one of: text, integer, percent, seconds)" + hint)
        XCTAssertEqual(try error("summary:\n  done: m.json\n  settings:\n    - {param: train.epochs, unles: '5'}\n"),
                       "FILE: `summary.settings[0].unles`: unknown key (expected one of: param, format, text, unless, suffix)" + hint)
        XCTAssertEqual(try error("summary:\n  done: m.json\n  settings:\n    - {param: a, suffix: {param: b, file: m.json, key: c}}\n"),
                       "FILE: `summary.settings[0].suffix`: give either `param` or `file` and `key`" + hint)
        XCTAssertEqual(try error("summary: {done: m.json, wall: {stages: [a], fallback: {file: m.json}}}\n"),
                       "FILE: `summary.wall.fallback.key` is missing" + hint)
        XCTAssertEqual(try error("summary: {done: [m.json]}\n"), "FILE: `summary.done` is not a single value" + hint)
        XCTAssertEqual(try error("summary: [done]\n"), "FILE: `summary` is not a mapping" + hint)
        XCTAssertEqual(try error("summary: {done: m.json, colour: red}\n"),
                       "FILE: `summary.colour`: unknown key (expected one of: done, settings, metrics, wall)" + hint)
    }

    /// Scalars compare as the file spells them: `unless: 5` is the text "5", `equals: true` is "true".
    func testUnquotedScalarsCompareAsText() throws {
        let ws = try Workspace(head + """
        summary:
          done: m.json
          settings:
            - {param: e, unless: 5, suffix: {param: a, equals: true, text: " + a"}}
        """, name: "exp.yaml")
        let spec = try XCTUnwrap(try ExperimentFile.load(ws.file).summary)
        XCTAssertEqual(spec, SummarySpec(done: "m.json", settings: [
            SettingPart(param: "e", unless: "5", suffix: .init(param: "a", text: " + a", equals: "true")),
        ]))
    }

    func testOtherShapeErrorsStillSayNotAnExperimentsFile() throws {
        let ws = try Workspace("runs: r\npresets: []\n", name: "exp.yaml")
        let message = pipelineErrorMessage { _ = try ExperimentFile.load(ws.file) }
        XCTAssertTrue(message.hasPrefix(ws.file.path + ": not an experiments file: `pipeline` is missing\n  hint: it needs `pipeline`"), message)
    }
}

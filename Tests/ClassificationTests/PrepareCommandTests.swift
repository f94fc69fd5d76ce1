import ArtifactKit
import TestSupport
import Classification
import XCTest

/// `prepare classification` as a process, with exactly the flags of pipeline.yaml's prepare stage.
final class PrepareCommandTests: XCTestCase {
    private func run(_ arguments: [String]) throws -> ToolRun {
        try runTool("prepare", arguments)
    }

    func testPipelineFlagsOnRealData() throws {
        let tsv = try DataPrepFixtures.smsTSV(), vocab = try DataPrepFixtures.vocabularyDirectory()
        let dir = try TestPaths.makeTempDir("prepare-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("prepared")
        let r = try run(["classification", "--input", tsv.path, "--vocab", vocab.path, "--out", out.path,
                         "--seed", "123", "--train-frac", "0.7", "--validation-frac", "0.1", "--max-length", "longest",
                         "--context-length", "1024", "--pad-token-id", "50256", "--labels", "ham,spam", "--balance", "undersample"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("5572"), r.stdout)
        let m = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(m.stats["total_rows"], 5572)
        XCTAssertEqual(m.stats["balanced_rows"], ["ham": 747, "spam": 747])
        XCTAssertEqual([m.stats["train_rows"], m.stats["validation_rows"], m.stats["test_rows"]], [1045, 149, 300])
        XCTAssertEqual(m.stats["max_length"], 120)
        XCTAssertEqual(m.params["seed"], 123)
        XCTAssertEqual(m.params["max_length"], "longest")
    }

    func testBadInputFailsWithMessageAndNoOutput() throws {
        let dir = try TestPaths.makeTempDir("prepare-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.tsv")
        try Data("ham\thello\nmaybe\tthere\n".utf8).write(to: bad)
        let out = dir.appendingPathComponent("prepared")
        let r = try run(["classification", "--input", bad.path, "--vocab", dir.path, "--out", out.path, "--labels", "ham,spam"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(bad.path):2"), r.stderr)
        XCTAssertTrue(r.stderr.contains("unknown label \"maybe\""), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        let r2 = try run(["classification", "--input", bad.path, "--vocab", dir.path, "--out", out.path, "--max-length", "huge"])
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("--max-length"), r2.stderr)
    }
}

/// `prepare classification` with the flags of pipelines/classify-your-data.yaml on 60 rows of the
/// demo CSV (tools/make_three_class_csv.py; 20 per class, in file order).
final class PrepareYourDataCommandTests: XCTestCase {
    func testThreeClassCSVWithTheYourDataFlags() throws {
        let vocab = try DataPrepFixtures.vocabularyDirectory()
        let dir = try TestPaths.makeTempDir("prepare-your-data")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = DataPrepFixtures.directory.appendingPathComponent("three_class_tasks.csv")
        let out = dir.appendingPathComponent("prepared")
        let r = try runTool("prepare", ["classification", "--input", input.path, "--format", "csv", "--text-column", "instruction",
                                        "--label-column", "task", "--balance", "undersample", "--stratify", "true", "--limit", "0",
                                        "--vocab", vocab.path, "--out", out.path, "--seed", "123", "--train-frac", "0.7",
                                        "--validation-frac", "0.1", "--max-length", "longest", "--context-length", "1024"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("classes by id: generate=0, question=1, transform=2"), r.stdout)
        let m = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(m.params["label_names"], ["generate", "question", "transform"])
        XCTAssertEqual(m.params["text_column"], "instruction")
        XCTAssertEqual(m.stats["splits"]?["train"]?["classes"], ["generate": 14, "question": 14, "transform": 14])
        XCTAssertEqual(m.stats["splits"]?["validation"]?["classes"], ["generate": 2, "question": 2, "transform": 2])
        XCTAssertEqual(m.stats["splits"]?["test"]?["classes"], ["generate": 4, "question": 4, "transform": 4])
        let train = try ClassificationShard.read(from: out.appendingPathComponent("train.bin"))
        XCTAssertEqual(train.numClasses, 3)

        let limited = try runTool("prepare", ["classification", "--input", input.path, "--text-column", "instruction",
                                              "--label-column", "task", "--balance", "none", "--limit", "30",
                                              "--vocab", vocab.path, "--out", out.path])
        XCTAssertEqual(limited.status, 0, limited.stderr)
        let stats = try Manifest.read(from: out.appendingPathComponent("manifest.json")).stats
        XCTAssertEqual(stats["total_rows"], 60)
        XCTAssertEqual(stats["rows_after_limit"], 30)
        XCTAssertEqual([stats["train_rows"], stats["validation_rows"], stats["test_rows"]], [21, 3, 6])
        XCTAssertTrue(limited.stdout.contains("limit 30: 30 rows kept"), limited.stdout)
        XCTAssertTrue(limited.stdout.contains("balance none"), limited.stdout)
    }

    /// Given splits through the command line: three JSONL files, or one JSONL file with a split key.
    func testGivenSplitsFromFilesOrASplitKey() throws {
        let vocab = try DataPrepFixtures.vocabularyDirectory()
        let dir = try TestPaths.makeTempDir("prepare-given")
        defer { try? FileManager.default.removeItem(at: dir) }
        func jsonl(_ name: String, _ rows: [(String, Int, String)]) throws -> String {
            let url = dir.appendingPathComponent(name)
            let lines = rows.map { "{\"review\": \"\($0.0)\", \"stars\": \($0.1), \"part\": \"\($0.2)\"}" }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
            return url.path
        }
        let train = try jsonl("train.jsonl", [("great film", 5, "train"), ("dull", 1, "train"), ("fine", 3, "train"), ("awful", 1, "train")])
        let dev = try jsonl("dev.jsonl", [("loved it", 5, "dev")])
        let test = try jsonl("test.jsonl", [("meh", 3, "test"), ("superb", 5, "test")])
        let columns = ["--text-column", "review", "--label-column", "stars", "--balance", "none", "--vocab", vocab.path]
        let out = dir.appendingPathComponent("files")
        let r = try runTool("prepare", ["classification", "--train", train, "--validation", dev, "--test", test,
                                        "--out", out.path] + columns)
        XCTAssertEqual(r.status, 0, r.stderr)
        let m = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual([m.stats["train_rows"], m.stats["validation_rows"], m.stats["test_rows"]], [4, 1, 2])
        XCTAssertEqual(m.params["label_names"], ["1", "3", "5"], "integer labels in numeric order")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("test.csv"), encoding: .utf8), "Label,Text\n1,meh\n2,superb\n")

        let all = try jsonl("all.jsonl", [("great film", 5, "train"), ("dull", 1, "train"), ("loved it", 5, "validation"),
                                          ("fine", 3, "train"), ("meh", 3, "test"), ("superb", 5, "test"), ("awful", 1, "train")])
        let keyed = try runTool("prepare", ["classification", "--input", all, "--split-column", "part",
                                            "--out", dir.appendingPathComponent("keyed").path] + columns)
        XCTAssertEqual(keyed.status, 0, keyed.stderr)
        for name in ["train", "validation", "test"] {
            XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("keyed/\(name).bin")),
                           try Data(contentsOf: out.appendingPathComponent("\(name).bin")), "\(name): the same rows either way")
        }

        let two = try runTool("prepare", ["classification", "--train", train, "--validation", dev,
                                          "--out", dir.appendingPathComponent("two").path] + columns)
        XCTAssertNotEqual(two.status, 0)
        XCTAssertTrue(two.stderr.contains("all three of --train FILE --validation FILE --test FILE"), two.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("two").path))
    }
}

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
}

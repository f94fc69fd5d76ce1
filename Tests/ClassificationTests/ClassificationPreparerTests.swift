import ArtifactKit
import TestSupport
import Classification
import XCTest

/// The whole stage on the real data, against the pandas/tiktoken fixture.
final class ClassificationPreparerTests: XCTestCase {
    private func options(out: URL) throws -> ClassificationPrepareOptions {
        ClassificationPrepareOptions(input: try DataPrepFixtures.smsTSV(), vocabDirectory: try DataPrepFixtures.vocabularyDirectory(), output: out)
    }

    private func checkShards(in dir: URL, key: String, sequenceLength: Int) throws {
        let fixture = try XCTUnwrap(try DataPrepFixtures.json("splits.json")["splits"] as? [String: [String: Any]])
        for name in ClassificationPreparer.splitNames {
            let expected = try XCTUnwrap(fixture[name]?[key] as? [String: Any])
            let shard = try ClassificationShard.read(from: dir.appendingPathComponent("\(name).bin"))
            XCTAssertEqual(shard.sequenceLength, sequenceLength)
            XCTAssertEqual(shard.rowCount, expected["rows"] as? Int)
            XCTAssertEqual(shard.padTokenID, 50256)
            XCTAssertEqual(shard.numClasses, 2)
            // Token ids come from our GPT-2 tokenizer; the expected hashes from tiktoken.
            // (hashed in the shard's encodings: u16 tokens, i32 labels and lengths, as numpy's tobytes())
            let tokens = shard.tokens.map { UInt16($0) }, labels = shard.labels.map { Int32($0) }, lengths = shard.lengths.map { Int32($0) }
            XCTAssertEqual(FileHash.sha256(of: tokens.withUnsafeBytes { Data($0) }), expected["tokens_sha256"] as? String, "\(name) tokens")
            XCTAssertEqual(FileHash.sha256(of: labels.withUnsafeBytes { Data($0) }), expected["labels_sha256"] as? String, "\(name) labels")
            XCTAssertEqual(FileHash.sha256(of: lengths.withUnsafeBytes { Data($0) }), expected["lengths_sha256"] as? String, "\(name) lengths")
        }
    }

    func testRealDataLongestMatchesTheBook() throws {
        let dir = try TestPaths.makeTempDir("prep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("prepared")
        let manifest = try ClassificationPreparer.run(try options(out: out))

        let onDisk = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(onDisk.format, "classification-dataset")
        XCTAssertEqual(onDisk.formatVersion, 1)
        XCTAssertEqual(onDisk.stats, manifest.stats)
        let s = onDisk.stats
        XCTAssertEqual(s["total_rows"], 5572)
        XCTAssertEqual(s["class_rows"], ["ham": 4825, "spam": 747])
        XCTAssertEqual(s["balanced_rows"], ["ham": 747, "spam": 747])
        XCTAssertEqual(onDisk.params["label_names"], ["ham", "spam"])
        XCTAssertEqual(onDisk.params["labels"], ["ham": 0, "spam": 1])
        XCTAssertEqual([s["train_rows"], s["validation_rows"], s["test_rows"]], [1045, 149, 300])
        XCTAssertEqual(s["max_length"], 120)
        XCTAssertEqual(s["truncated"], 0)
        let fixture = try XCTUnwrap(try DataPrepFixtures.json("splits.json")["splits"] as? [String: [String: Any]])
        for name in ClassificationPreparer.splitNames {
            let expected = try XCTUnwrap(fixture[name])
            let longest = try XCTUnwrap(expected["max_length_longest"] as? [String: Any])
            XCTAssertEqual(s["splits"]?[name]?["longest_tokens"]?.intValue, longest["longest_tokens"] as? Int, name)
            XCTAssertEqual(s["splits"]?[name]?["classes"]?["ham"]?.intValue, expected["ham"] as? Int, name)
            XCTAssertEqual(s["splits"]?[name]?["classes"]?["spam"]?.intValue, expected["spam"] as? Int, name)
            // CSV files byte-identical to pandas' to_csv.
            let csv = try Data(contentsOf: out.appendingPathComponent("\(name).csv"))
            XCTAssertEqual(FileHash.sha256(of: csv), expected["csv_sha256"] as? String, name)
        }
        try checkShards(in: out, key: "max_length_longest", sequenceLength: 120)
        // Nothing is cut at the longest length, so the tokens counted are the tokens kept.
        for name in ClassificationPreparer.splitNames {
            let kept = try ClassificationShard.read(from: out.appendingPathComponent("\(name).bin")).lengths.reduce(0, +)
            XCTAssertEqual(s["splits"]?[name]?["tokens"]?.intValue, kept, name)
        }

        // Every output is recorded with its real hash; the inputs with theirs.
        XCTAssertEqual(Set(onDisk.outputs.map(\.path)), ClassificationPreparer.outputFileNames.subtracting(["manifest.json"]))
        for record in onDisk.outputs {
            XCTAssertEqual(try FileRecord.of(out.appendingPathComponent(record.path), as: record.path), record)
        }
        XCTAssertEqual(onDisk.inputs.count, 3)
        XCTAssertEqual(onDisk.inputs.last?.sha256, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["prepared"], "no temporaries left")
    }

    func testFixedMaxLengthTruncatesLikeTheBook() throws {
        let dir = try TestPaths.makeTempDir("prep64")
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = try options(out: dir.appendingPathComponent("p"))
        o.maxLength = .fixed(64)
        let manifest = try ClassificationPreparer.run(o)
        let fixture = try XCTUnwrap(try DataPrepFixtures.json("splits.json")["splits"] as? [String: [String: Any]])
        var total = 0
        for name in ClassificationPreparer.splitNames {
            let truncated = try XCTUnwrap((fixture[name]?["max_length_64"] as? [String: Any])?["truncated"] as? Int)
            XCTAssertEqual(manifest.stats["splits"]?[name]?["truncated"]?.intValue, truncated, name)
            total += truncated
        }
        XCTAssertGreaterThan(total, 0)
        XCTAssertEqual(manifest.stats["truncated"]?.intValue, total)
        try checkShards(in: dir.appendingPathComponent("p"), key: "max_length_64", sequenceLength: 64)
        // The tokens counted are those before the cut: more than the shards keep.
        let kept = try ClassificationPreparer.splitNames.map {
            try ClassificationShard.read(from: dir.appendingPathComponent("p/\($0).bin")).lengths.reduce(0, +)
        }.reduce(0, +)
        XCTAssertGreaterThan(try XCTUnwrap(manifest.stats["tokens"]?.intValue), kept)
    }

    func testFailureLeavesThePreviousOutputUntouched() throws {
        let dir = try TestPaths.makeTempDir("prep-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("prepared")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let old = Data("old".utf8)
        try old.write(to: out.appendingPathComponent("train.csv"))
        let bad = dir.appendingPathComponent("bad.tsv")
        try Data("ham\thi\nspam\tWIN\nspan\toops\n".utf8).write(to: bad)
        var o = ClassificationPrepareOptions(input: bad, vocabDirectory: dir, output: out)
        o.inputFormat.labelNames = ["ham", "spam"]
        let e = DataPrepFixtures.pipelineError { _ = try ClassificationPreparer.run(o) { _ in [1] } }
        XCTAssertEqual(e?.location, "\(bad.path):3")
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("train.csv")), old)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["bad.tsv", "prepared"])

        // Longest text beyond the context length: refused, with a hint.
        try Data("ham\ta b c d e\nspam\tv w x y z\n".utf8).write(to: bad)
        o.contextLength = 3
        (o.trainFraction, o.validationFraction) = (1, 0)   // both rows in train, so every class is there
        let tooLong = DataPrepFixtures.pipelineError {
            _ = try ClassificationPreparer.run(o) { text in text.split(separator: " ").map { _ in 7 } }
        }
        XCTAssertTrue(tooLong?.hint?.contains("--max-length context") ?? false, tooLong?.description ?? "")
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("train.csv")), old)
    }

    func testForeignFilesInOutputDirectoryAreNotDeleted() throws {
        let dir = try TestPaths.makeTempDir("prep-foreign")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("keep".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        let input = dir.appendingPathComponent("in.tsv")
        try Data("ham\ta b\nham\tc\nham\tx\nspam\td e f\nspam\ty\n".utf8).write(to: input)
        // The vocabulary files are hashed as inputs; any bytes do for this test's fake tokenizer.
        try Data("{}".utf8).write(to: dir.appendingPathComponent("encoder.json"))
        try Data("#".utf8).write(to: dir.appendingPathComponent("vocab.bpe"))
        let o = ClassificationPrepareOptions(input: input, vocabDirectory: dir, output: dir)
        let e = DataPrepFixtures.pipelineError { _ = try ClassificationPreparer.run(o) { $0.split(separator: " ").map { _ in 1 } } }
        XCTAssertTrue(e?.message.contains("notes.txt") ?? false, e?.description ?? "")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("notes.txt").path))

        // A fresh directory works with the same fake tokenizer and is replaced on a rerun.
        var fresh = o
        fresh.output = dir.appendingPathComponent("out")
        fresh.trainFraction = 0.5
        fresh.validationFraction = 0.0
        fresh.stratify = true
        for _ in 0..<2 {
            let m = try ClassificationPreparer.run(fresh) { $0.split(separator: " ").map { _ in 1 } }
            XCTAssertEqual(m.stats["balanced_rows"]?["ham"], 2)
            XCTAssertEqual([m.stats["train_rows"], m.stats["validation_rows"], m.stats["test_rows"]], [2, 0, 2])
            XCTAssertEqual(try ClassificationShard.read(from: fresh.output.appendingPathComponent("validation.bin")).rowCount, 0)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fresh.output.path).sorted(),
                       ClassificationPreparer.outputFileNames.sorted())
    }

    func testContextMaxLengthPadsEverySplitToTheContextLength() throws {
        let dir = try TestPaths.makeTempDir("prep-context")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.tsv")
        try Data("ham\ta b\nham\tc\nham\td\nspam\te f g\nspam\th\n".utf8).write(to: input)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("encoder.json"))
        try Data("#".utf8).write(to: dir.appendingPathComponent("vocab.bpe"))
        var o = ClassificationPrepareOptions(input: input, vocabDirectory: dir, output: dir.appendingPathComponent("out"))
        o.maxLength = .context
        o.contextLength = 2
        o.padTokenID = 9
        let m = try ClassificationPreparer.run(o) { $0.split(separator: " ").map { _ in 5 } }
        XCTAssertEqual(m.stats["max_length"], 2)
        var rows = 0
        for name in ClassificationPreparer.splitNames {
            let shard = try ClassificationShard.read(from: o.output.appendingPathComponent("\(name).bin"))
            XCTAssertEqual(shard.sequenceLength, 2)
            XCTAssertEqual(shard.padTokenID, 9)
            for i in 0..<shard.rowCount {
                let n = shard.lengths[i]
                XCTAssertEqual(Array(shard.row(i)), Array(repeating: 5, count: n) + Array(repeating: 9, count: 2 - n))
            }
            rows += shard.rowCount
        }
        XCTAssertEqual(rows, 4)
        XCTAssertEqual(m.params["max_length"], "context")
    }

    func testMaxLengthParsing() throws {
        XCTAssertEqual(try MaxLengthSetting(parsing: "longest"), .longest)
        XCTAssertEqual(try MaxLengthSetting(parsing: "context"), .context)
        XCTAssertEqual(try MaxLengthSetting(parsing: "256"), .fixed(256))
        XCTAssertThrowsError(try MaxLengthSetting(parsing: "0"))
        XCTAssertThrowsError(try MaxLengthSetting(parsing: "long"))
    }
}

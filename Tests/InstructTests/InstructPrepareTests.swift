import ArtifactKit
import TestSupport
import Instruct
import XCTest

/// `prepareInstructionDataset` with a stand-in encoder (one token per UTF-8 byte) so that the
/// pipeline logic is tested apart from BPE; the GPT-2 runs are in InstructTokenizerTests.
final class InstructPrepareTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try TestPaths.makeTempDir("instruct-prepare")
        let vocab = dir.appendingPathComponent("gpt2")
        try FileManager.default.createDirectory(at: vocab, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: vocab.appendingPathComponent("encoder.json"))
        try Data("#version: 0.2\n".utf8).write(to: vocab.appendingPathComponent("vocab.bpe"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func byteEncoder(_ text: String) throws -> [Int] {
        if text.contains("<|endoftext|>") { throw PipelineError("text contains the special token <|endoftext|>") }
        return text.utf8.map(Int.init)
    }

    private func options(input: URL, style: PromptStyle = .alpaca, allowed: Int = 1024) -> InstructionPrepareOptions {
        InstructionPrepareOptions(input: input, vocabDirectory: dir.appendingPathComponent("gpt2"),
                                  output: dir.appendingPathComponent("out"), style: style, allowedMaxLength: allowed)
    }

    private func writeEntries(_ count: Int, _ make: (Int) -> InstructionEntry = {
        InstructionEntry(instruction: "Task \($0)", input: $0 % 3 == 0 ? "in \($0)" : "", output: String(repeating: "x", count: $0))
    }) throws -> URL {
        let url = dir.appendingPathComponent("data.json")
        try InstructionEntries.encoded((0..<count).map(make)).write(to: url)
        return url
    }

    func testWritesShardsEntriesAndManifest() throws {
        let input = try writeEntries(40)
        let manifest = try prepareInstructionDataset(options(input: input, allowed: 140), encode: byteEncoder)
        let out = dir.appendingPathComponent("out")
        XCTAssertEqual(try DirectoryListing.files(in: out),
                       ["manifest.json", "test.bin", "test.json", "train.bin", "train.json", "validation.bin", "validation.json"])
        XCTAssertEqual(manifest.format, "instruction-dataset")
        XCTAssertEqual(manifest.formatVersion, 2)
        XCTAssertEqual(manifest.stats["split"], ["train": 34, "validation": 2, "test": 4])
        XCTAssertEqual(manifest.params["template"], "alpaca")
        XCTAssertEqual(manifest.stats["shape"], "alpaca")
        XCTAssertEqual(manifest.params["allowed_max_length"], 140)
        XCTAssertEqual(manifest.inputs.map(\.path).map { URL(fileURLWithPath: $0).lastPathComponent },
                       ["data.json", "encoder.json", "vocab.bpe"])
        for record in manifest.outputs {
            XCTAssertEqual(record.sha256, try FileHash.sha256(of: out.appendingPathComponent(record.path)), record.path)
        }

        let dataset = try InstructionDataset(directory: out)
        XCTAssertEqual(dataset.style, .alpaca)
        XCTAssertEqual(dataset.allowedMaxLength, 140)
        let all = try readRecords(input)
        var lengths: [Int] = []
        for (name, range) in [(InstructionSplitName.train, 0..<34), (.test, 34..<38), (.validation, 38..<40)] {
            let shard = try dataset.shard(name)
            XCTAssertEqual(try dataset.entries(name), Array(all[range]))
            XCTAssertEqual(shard.rowCount, range.count)
            for (row, entry) in all[range].enumerated() {
                XCTAssertEqual(shard.row(row), Array(formatFullText(entry).utf8).map(Int.init))
                XCTAssertEqual(shard.responseStart(row: row), formatPrompt(entry).utf8.count)
                lengths.append(shard.length(row: row))
            }
        }
        // Rows longer than allowed_max_length are counted (and kept whole: the collate cuts them).
        let over = lengths.filter { $0 > 140 }.count
        XCTAssertGreaterThan(over, 0)
        XCTAssertEqual(manifest.stats["truncated_rows"], .int(over))
        XCTAssertEqual(manifest.stats["longest"]?["tokens"], .int(lengths.max()!))
        XCTAssertEqual(manifest.stats["longest"]?["entry"], 39)
        XCTAssertEqual(manifest.stats["prompt_not_prefix_rows"], 0)
    }

    func testRerunReplacesOutputAndStyleChangesRows() throws {
        let input = try writeEntries(20)
        try prepareInstructionDataset(options(input: input), encode: byteEncoder)
        let out = dir.appendingPathComponent("out")
        try Data("stale".utf8).write(to: out.appendingPathComponent("leftover.txt"))
        let manifest = try prepareInstructionDataset(options(input: input, style: .phi3), encode: byteEncoder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("leftover.txt").path))
        XCTAssertEqual(manifest.params["template"], "phi3")
        let entries = try readRecords(input)
        XCTAssertEqual(try InstructionDataset(directory: out).shard(.train).row(0),
                       Array(formatFullText(entries[0], style: .phi3).utf8).map(Int.init))
        // Nothing else (no staging folders) is left beside the output.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["data.json", "gpt2", "out"])
    }

    func testBadInputLeavesPreviousOutputUntouched() throws {
        let good = try writeEntries(20)
        try prepareInstructionDataset(options(input: good), encode: byteEncoder)
        let manifestURL = dir.appendingPathComponent("out/manifest.json")
        let before = try Data(contentsOf: manifestURL)

        try Data(#"[{"instruction": "a", "output": "b"}, {"instruction": "c", "input": 1, "output": "d"}]"#.utf8).write(to: good)
        XCTAssertThrowsError(try prepareInstructionDataset(options(input: good), encode: byteEncoder)) { error in
            XCTAssertTrue("\(error)".contains("entry 1, key \"input\""), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: manifestURL), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["data.json", "gpt2", "out"])
    }

    func testSpecialTokenInTextNamesTheEntry() throws {
        let input = try writeEntries(30) { i in
            InstructionEntry(instruction: "Task \(i)", output: i == 27 ? "end <|endoftext|> here" : "ok")
        }
        XCTAssertThrowsError(try prepareInstructionDataset(options(input: input), encode: byteEncoder)) { error in
            XCTAssertTrue("\(error)".contains("entry 27"), "\(error)")
            XCTAssertTrue("\(error)".contains("<|endoftext|>"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    func testMissingVocabAndEmptyInputAreErrors() throws {
        let input = try writeEntries(20)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("gpt2/vocab.bpe"))
        XCTAssertThrowsError(try prepareInstructionDataset(options(input: input), encode: byteEncoder)) { error in
            XCTAssertTrue("\(error)".contains("vocab.bpe"), "\(error)")
        }
        let empty = dir.appendingPathComponent("empty.json")
        try Data("[]".utf8).write(to: empty)
        XCTAssertThrowsError(try prepareInstructionDataset(options(input: empty), encode: byteEncoder)) { error in
            XCTAssertTrue("\(error)".contains("no entries"), "\(error)")
        }
        XCTAssertThrowsError(try prepareInstructionDataset(options(input: dir.appendingPathComponent("absent.json")), encode: byteEncoder)) { error in
            XCTAssertTrue("\(error)".contains("absent.json"), "\(error)")
        }
    }

    /// The response start is the prompt's token count even when BPE of the whole text does not
    /// begin with the prompt's tokens; such rows are counted in the manifest.
    func testPromptNotPrefixIsRecorded() throws {
        let input = try writeEntries(20)
        // A stand-in encoder whose first token depends on what follows the prompt, as a
        // context-dependent BPE split would.
        let quirky: (String) throws -> [Int] = { text in
            var tokens = text.utf8.map(Int.init)
            if text.hasPrefix(alpacaPreamble), text.contains("### Response:") { tokens[0] = 999 }
            return tokens
        }
        let manifest = try prepareInstructionDataset(options(input: input), encode: quirky)
        XCTAssertEqual(manifest.stats["prompt_not_prefix_rows"], 20)
        let firstEntries = manifest.stats["prompt_not_prefix_entries"]
        XCTAssertEqual(firstEntries, .array((0..<20).map { JSONValue.int($0) }))
    }

    func testManifestFormatIsChecked() throws {
        let out = dir.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Manifest(format: "classification-dataset", formatVersion: 1, tool: "prepare classification").write(into: out)
        XCTAssertThrowsError(try InstructionDataset(directory: out)) { error in
            XCTAssertTrue("\(error)".contains("expected instruction-dataset"), "\(error)")
        }
        XCTAssertThrowsError(try InstructionDataset(directory: dir.appendingPathComponent("nothing"))) { error in
            XCTAssertTrue("\(error)".contains("no manifest.json"), "\(error)")
        }
    }
}

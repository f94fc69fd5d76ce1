import ArtifactKit
import TestSupport
import Instruct
import XCTest

/// `gpt2/encoder.json` and `gpt2/vocab.bpe` stand-ins: prepare records them as inputs, and these
/// tests encode with a stand-in encoder instead of BPE.
func makeStubVocab(in dir: URL) throws {
    let vocab = dir.appendingPathComponent("gpt2")
    try FileManager.default.createDirectory(at: vocab, withIntermediateDirectories: true)
    try Data("{}".utf8).write(to: vocab.appendingPathComponent("encoder.json"))
    try Data("#version: 0.2\n".utf8).write(to: vocab.appendingPathComponent("vocab.bpe"))
}

/// `prepareInstructionDataset` with a stand-in encoder (one token per UTF-8 byte) so that the
/// pipeline logic is tested apart from BPE; the GPT-2 runs are in InstructTokenizerTests.
final class InstructPrepareTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try TestPaths.makeTempDir("instruct-prepare")
        try makeStubVocab(in: dir)
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

    // Prompt-completion and chat files, and the splits given as files.

    private func write(_ name: String, _ lines: [String]) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    private func pairs(_ range: Range<Int>) -> [String] {
        range.map { #"{"prompt": "Question \#($0)?", "completion": "Answer \#($0)."}"# }
    }

    private func options(_ source: InstructionSource, style: PromptStyle = .alpaca) -> InstructionPrepareOptions {
        InstructionPrepareOptions(source: source, vocabDirectory: dir.appendingPathComponent("gpt2"), output: dir.appendingPathComponent("out"), style: style)
    }

    func testSplitsFromGivenFiles() throws {
        let train = try write("train.jsonl", pairs(0..<6)), validation = try write("validation.jsonl", pairs(6..<8) + ["", ""])
        let test = try write("test.json", ["[" + pairs(8..<10).joined(separator: ",") + "]"])
        let manifest = try prepareInstructionDataset(options(.files(train: train, validation: validation, test: test)), encode: byteEncoder)
        XCTAssertEqual(manifest.stats["split"], ["train": 6, "validation": 2, "test": 2])
        XCTAssertEqual(manifest.stats["shape"], "prompt-completion")
        XCTAssertEqual(manifest.params["split"], "files")
        XCTAssertEqual(manifest.params["test_file"], .string(test.relativePath))
        XCTAssertEqual(manifest.inputs.map { URL(fileURLWithPath: $0.path).lastPathComponent },
                       ["train.jsonl", "validation.jsonl", "test.json", "encoder.json", "vocab.bpe"])
        guard case .array(let files)? = manifest.stats["files"] else { return XCTFail("no files in the stats") }
        XCTAssertEqual(files.map { $0["split"] }, ["train", "validation", "test"])
        XCTAssertEqual(files.map { $0["skipped_blank_lines"] }, [0, 1, 0])
        XCTAssertEqual(files.map { $0["format"] }, ["jsonl", "jsonl", "json"])
        let data = try InstructionDataset(directory: dir.appendingPathComponent("out"))
        XCTAssertEqual(try data.entries(.test), (8..<10).map { .promptCompletion(prompt: "Question \($0)?", completion: "Answer \($0).") })
        let first = InstructionRecord.promptCompletion(prompt: "Question 0?", completion: "Answer 0.")
        XCTAssertEqual(try data.shard(.train).row(0), Array(formatFullText(first).utf8).map(Int.init))
        XCTAssertEqual(try data.shard(.train).responseStart(row: 0), formatPrompt(first).utf8.count)

        // Without a test file the test split is empty.
        try prepareInstructionDataset(options(.files(train: train, validation: validation, test: nil)), encode: byteEncoder)
        XCTAssertEqual(try data.shard(.test).rowCount, 0)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("out/test.json"), encoding: .utf8), "[]\n")
    }

    func testGivenFilesMustShareAShapeAndHoldEntries() throws {
        let train = try write("train.jsonl", pairs(0..<4))
        let chat = try write("validation.jsonl", [#"{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}"#])
        XCTAssertThrowsError(try prepareInstructionDataset(options(.files(train: train, validation: chat, test: nil)), encode: byteEncoder)) {
            XCTAssertTrue("\($0)".contains("the validation file is chat (messages of role/content) but the train file is prompt-completion"), "\($0)")
            XCTAssertTrue("\($0)".contains("validation.jsonl"), "\($0)")
        }
        let blank = try write("blank.jsonl", ["", "  ", ""])
        XCTAssertThrowsError(try prepareInstructionDataset(options(.files(train: train, validation: blank, test: nil)), encode: byteEncoder)) {
            XCTAssertTrue("\($0)".contains("the validation file holds no entries"), "\($0)")
        }
        let empty = try write("empty.json", ["[]"])
        XCTAssertThrowsError(try prepareInstructionDataset(options(.fractions(input: empty, trainFrac: 0.8, testFrac: 0.1)), encode: byteEncoder)) {
            XCTAssertTrue("\($0)".contains("the input file holds no entries"), "\($0)")
        }
        let few = try write("few.jsonl", pairs(0..<1))
        XCTAssertThrowsError(try prepareInstructionDataset(options(.fractions(input: few, trainFrac: 0.85, testFrac: 0.1)), encode: byteEncoder)) {
            XCTAssertTrue("\($0)".contains("the train split of 1 entries would be empty"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    /// Multi-turn chats need version-2 shards; their spans are every assistant turn's.
    func testMultiTurnChatWritesSpans() throws {
        let chat = InstructionRecord.chat([ChatMessage(.system, "S"), ChatMessage(.user, "U1"), ChatMessage(.assistant, "A1"),
                                           ChatMessage(.user, "U2"), ChatMessage(.assistant, "A2")])
        let single = InstructionRecord.chat([ChatMessage(.user, "U"), ChatMessage(.assistant, "A")])
        let records = (0..<10).map { $0 % 2 == 0 ? chat : single }
        let input = try write("chat.jsonl", try records.map { record in
            let messages = record.messages.map { ["role": $0.role.rawValue, "content": $0.content] }
            return String(decoding: try JSONSerialization.data(withJSONObject: ["messages": messages]), as: UTF8.self)
        })
        for style in PromptStyle.allCases {
            let manifest = try prepareInstructionDataset(options(.fractions(input: input, trainFrac: 0.6, testFrac: 0.2), style: style), encode: byteEncoder)
            XCTAssertEqual(manifest.stats["responses"], 15)
            XCTAssertEqual(manifest.stats["multi_turn_entries"], 5)
            let shard = try InstructionDataset(directory: dir.appendingPathComponent("out")).shard(.train)
            XCTAssertEqual(shard.formatVersion, 2, "\(style)")
            var at = 0, spans: [Range<Int>] = []
            for segment in style.segments(chat) {
                let n = segment.text.utf8.count
                if segment.isResponse { spans.append(at..<(at + n)) }
                at += n
            }
            XCTAssertEqual(shard.responseSpans(row: 0), spans, "\(style)")
            XCTAssertEqual(shard.responseSpans(row: 1).count, 1, "\(style)")
            let header = try Data(contentsOf: dir.appendingPathComponent("out/train.bin")).prefix(12)
            XCTAssertEqual(Array(header.suffix(4)), [2, 0, 0, 0])
        }
    }

    func testBadJSONLLeavesThePreviousOutput() throws {
        let input = try write("data.jsonl", pairs(0..<20))
        try prepareInstructionDataset(options(.fractions(input: input, trainFrac: 0.85, testFrac: 0.1)), encode: byteEncoder)
        let before = try Data(contentsOf: dir.appendingPathComponent("out/manifest.json"))
        _ = try write("data.jsonl", pairs(0..<5) + [#"{"messages": [{"role": "user", "content": "no answer"}]}"#])
        XCTAssertThrowsError(try prepareInstructionDataset(options(.fractions(input: input, trainFrac: 0.85, testFrac: 0.1)), encode: byteEncoder)) {
            XCTAssertTrue("\($0)".contains("line 6 is chat"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("out/manifest.json")), before)
    }
}

import ArtifactKit
import GPT2Tokenizer
import TestSupport
import Instruct
import XCTest

/// `prepare instruct` with the real GPT-2 tokenizer on the book's real file, against the
/// tiktoken reference (Tests/Fixtures/instruct/reference.json).
final class InstructTokenizerTests: XCTestCase {
    private static var cachedTokenizer: GPT2BPETokenizer?

    private func tokenizer() throws -> GPT2BPETokenizer {
        if let t = Self.cachedTokenizer { return t }
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("shared assets (../shared/assets or $LLMFT_ASSETS) not present: the GPT-2 vocabulary is needed")
        }
        let t = try GPT2BPETokenizer(directory: assets.appendingPathComponent("gpt2"))
        Self.cachedTokenizer = t
        return t
    }

    /// The first rows of each split (fixture-only, no instruction file needed).
    func testFirstRowsMatchTiktoken() throws {
        let tok = try tokenizer()
        let ref = try InstructReference.load()
        for style in bookStyles {
            for (name, split) in try XCTUnwrap(ref.styles[style.rawValue]) {
                for (i, e) in split.first_entries.enumerated() {
                    let entry = InstructionEntry(instruction: e.instruction, input: e.input, output: e.output)
                    XCTAssertEqual(try tok.encode(formatFullText(entry, style: style)), split.first_rows[i], "\(style)/\(name)/\(i)")
                    XCTAssertEqual(try tok.encode(formatPrompt(entry, style: style)).count, split.prompt_lengths[i], "\(style)/\(name)/\(i)")
                }
            }
        }
    }

    /// The whole pipeline on the real file, both styles: split sizes, every token row (by hash),
    /// every prompt length, the manifest's statistics; response start = a prefix of each row.
    func testPrepareRealFileMatchesReference() throws {
        let tok = try tokenizer()
        let input = try instructionDataURL()
        let ref = try InstructReference.load()
        XCTAssertEqual(try FileHash.sha256(of: input), ref.source.sha256, "the shared file differs from the one the fixture was made from")
        let dir = try TestPaths.makeTempDir("instruct-real")
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocab = TestPaths.sharedAssets!.appendingPathComponent("gpt2")

        for style in bookStyles {
            let out = dir.appendingPathComponent(style.rawValue)
            let manifest = try prepareInstructionDataset(InstructionPrepareOptions(input: input, vocabDirectory: vocab, output: out, style: style))
            XCTAssertEqual(manifest.stats["entries"], 1100)
            XCTAssertEqual(manifest.stats["split"], ["train": 935, "validation": 55, "test": 110])
            XCTAssertEqual(manifest.stats["truncated_rows"], 0)
            XCTAssertEqual(manifest.stats["prompt_not_prefix_rows"], 0)
            let dataset = try InstructionDataset(directory: out)
            let entries = try readRecords(input)
            var offset = 0
            var longest = 0
            for name in [InstructionSplitName.train, .test, .validation] {
                let expected = try XCTUnwrap(ref.styles[style.rawValue]?[name.rawValue])
                let shard = try dataset.shard(name)
                let rows = (0..<shard.rowCount).map { shard.row($0) }
                XCTAssertEqual(shard.rowCount, ref.split_sizes[name.rawValue], "\(style)/\(name)")
                XCTAssertEqual(rowsSHA256(rows), expected.rows_sha256, "\(style)/\(name)")
                XCTAssertEqual(rows.map(\.count), expected.lengths, "\(style)/\(name)")
                XCTAssertEqual((0..<shard.rowCount).map { shard.responseStart(row: $0) }, expected.prompt_lengths, "\(style)/\(name)")
                XCTAssertEqual(Array(rows.prefix(3)), expected.first_rows, "\(style)/\(name)")
                XCTAssertEqual(try dataset.entries(name), Array(entries[offset..<(offset + shard.rowCount)]))
                let stats = try XCTUnwrap(manifest.stats["splits"]?[name.rawValue])
                XCTAssertEqual(stats["tokens"], .int(expected.total_tokens))
                XCTAssertEqual(stats["max_tokens"], .int(expected.max_tokens))
                XCTAssertEqual(stats["min_tokens"], .int(expected.min_tokens))
                longest = max(longest, expected.max_tokens)
                // The response start is where the prompt's own encoding ends inside the row.
                for r in 0..<shard.rowCount {
                    let entry = entries[offset + r]
                    let promptTokens = try tok.encode(formatPrompt(entry, style: style))
                    XCTAssertEqual(Array(rows[r].prefix(shard.responseStart(row: r))), promptTokens)
                }
                offset += shard.rowCount
            }
            XCTAssertEqual(manifest.stats["longest"]?["tokens"], .int(longest))
        }
    }

    func testDescribeRowSplitsPromptAndResponse() throws {
        let tok = try tokenizer()
        let entries = [InstructionEntry(instruction: "Rewrite the sentence using a simile.", input: "The car is very fast.", output: "The car is as fast as lightning."),
                       InstructionEntry(instruction: "Name the author of 'Pride and Prejudice'.", output: "Jane Austen.")]
        for style in PromptStyle.allCases {
            let tokenized = try tokenizeInstructions(entries.map(InstructionRecord.alpaca), style: style) { try tok.encode($0) }
            let shard = try InstructionShard(rows: tokenized.rows, responseSpans: tokenized.responseSpans)
            for (i, entry) in entries.enumerated() {
                let pieces = try describeRow(shard, row: i, tokenizer: tok)
                XCTAssertEqual(pieces, [TemplateSegment(formatPrompt(entry, style: style), isResponse: false),
                                        TemplateSegment(formatResponse(entry, style: style), isResponse: true)], "\(style)")
            }
            XCTAssertThrowsError(try describeRow(shard, row: 2, tokenizer: tok))
        }
    }

    /// A special token inside an entry is an error naming the entry, as tiktoken's encode raises.
    func testEndOfTextInsideEntryIsAnError() throws {
        let tok = try tokenizer()
        let entries = [InstructionEntry(instruction: "a", output: "b"), InstructionEntry(instruction: "x <|endoftext|> y", output: "z")]
        XCTAssertThrowsError(try tokenizeInstructions(entries.map(InstructionRecord.alpaca), style: .alpaca, places: ["entry 10", "entry 11"], source: "f.json") { try tok.encode($0) }) { error in
            XCTAssertTrue("\(error)".contains("entry 11"), "\(error)")
            XCTAssertTrue("\(error)".contains("<|endoftext|>"), "\(error)")
        }
        // The Phi-3 markers are plain text: several ordinary tokens, no error.
        let phi = try tok.encode("<|user|>\nHi\n<|assistant|>:\nHello")
        XCTAssertFalse(phi.contains(GPT2BPETokenizer.endOfTextID))
    }
}

final class InstructPreviewTests: XCTestCase {
    func testPreviewWithoutTokenizerListsTokens() throws {
        let shard = try InstructionShard(rows: [[1, 2, 3], [4]], responseStarts: [2, 1])
        let text = instructionShardPreview(shard, rows: 5)
        XCTAssertTrue(text.hasPrefix("instruction shard (LLMFTINS v1): 2 rows, 4 tokens, row length 1...3, 1 response spans"), text)
        XCTAssertTrue(text.contains("row 0: 3 tokens, response tokens 2..<3\n  tokens: 1 2 3"), text)
        XCTAssertTrue(text.contains("row 1: 1 tokens, response tokens none\n  tokens: 4"), text)
        let multi = instructionShardPreview(try InstructionShard(rows: [[1, 2, 3, 4, 5, 6]], responseSpans: [[1..<3, 4..<6]]))
        XCTAssertTrue(multi.hasPrefix("instruction shard (LLMFTINS v2): 1 rows, 6 tokens, row length 6...6, 2 response spans"), multi)
        XCTAssertTrue(multi.contains("row 0: 6 tokens, response tokens 1..<3, 4..<6"), multi)
    }

    func testPreviewWithTokenizerDecodes() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let tok = try GPT2BPETokenizer(directory: assets.appendingPathComponent("gpt2"))
        let entry = InstructionEntry(instruction: "Say hi.", output: "Hi.")
        let t = try tokenizeInstructions([.alpaca(entry)], style: .phi3) { try tok.encode($0) }
        let text = instructionShardPreview(try InstructionShard(rows: t.rows, responseSpans: t.responseSpans), tokenizer: tok)
        XCTAssertTrue(text.contains(#"prompt:   "<|user|>\nSay hi.""#), text)
        XCTAssertTrue(text.contains(#"response: "\n<|assistant|>:\nHi.""#), text)
    }
}

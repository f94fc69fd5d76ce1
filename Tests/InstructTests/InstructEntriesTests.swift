import ArtifactKit
import TestSupport
import Instruct
import XCTest

final class InstructEntriesTests: XCTestCase {
    private func parseError(_ json: String) -> String {
        do {
            _ = try InstructionRecords.parse(Data(json.utf8), source: "raw/instruction-data.json")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testParsesEntriesAndTreatsMissingInputAsEmpty() throws {
        let json = #"[{"instruction": "Add.", "input": "1 + 1", "output": "2"}, {"instruction": "Say hi.", "output": "Hi.", "extra": 5}]"#
        let entries = try InstructionRecords.parse(Data(json.utf8), source: "x").records
        XCTAssertEqual(entries, [.alpaca(InstructionEntry(instruction: "Add.", input: "1 + 1", output: "2")),
                                 .alpaca(InstructionEntry(instruction: "Say hi.", input: "", output: "Hi."))])
    }

    func testBadInputsGiveClearErrors() {
        let cases: [(String, [String])] = [
            ("{\"instruction\": \"x\"}", ["expected a JSON list", "found an object"]),
            ("[1, 2", ["not valid JSON"]),
            ("[{\"instruction\": \"a\", \"output\": \"b\"},\n 7]", ["entry 1 is a number"]),
            ("[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"c\"}]", ["entry 1 has no \"output\" key"]),
            ("[{\"input\": \"\", \"output\": \"b\"}]", ["entry 0 has no \"instruction\" key"]),
            ("[{\"instruction\": \"a\", \"input\": 3, \"output\": \"b\"}]", ["entry 0, key \"input\"", "found a number"]),
            ("[{\"instruction\": null, \"output\": \"b\"}]", ["entry 0, key \"instruction\"", "found null"]),
            ("[{\"instruction\": \"a\", \"output\": true}]", ["entry 0, key \"output\"", "found a boolean"]),
            ("[{\"instruction\": [\"a\"], \"output\": \"b\"}]", ["key \"instruction\"", "found a list"]),
            ("\"just a string\"", ["expected a JSON list", "found a string"]),
        ]
        for (json, fragments) in cases {
            let message = parseError(json)
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "for \(json): \(message) lacks \(fragment)")
            }
            XCTAssertTrue(message.contains("raw/instruction-data.json"), "for \(json): no file name in \(message)")
        }
    }

    func testSyntaxErrorNamesLine() {
        let message = parseError("[\n{\"instruction\": \"a\", \"output\": \"b\"},\n{\"instruction\": oops}\n]")
        XCTAssertTrue(message.contains("line 3"), message)
    }

    func testEncodedRoundTripsAwkwardText() throws {
        let entries = [InstructionEntry(instruction: "Quote \"this\" \\ and\ttab", input: "naïve – ☃\u{1}", output: "line\nbreak\r"),
                       InstructionEntry(instruction: "b", output: "")]
        let data = InstructionEntries.encoded(entries)
        XCTAssertEqual(try InstructionRecords.parse(data, source: "x").records, entries.map(InstructionRecord.alpaca))
        // Also readable by a standard parser, with the book's key order.
        let text = String(decoding: data, as: UTF8.self)
        let i = try XCTUnwrap(text.range(of: "\"instruction\"")), o = try XCTUnwrap(text.range(of: "\"output\""))
        XCTAssertLessThan(i.lowerBound, o.lowerBound)
        XCTAssertEqual(InstructionEntries.encoded([]), Data("[]\n".utf8))   // json.dumps([], indent=4) + newline
    }

    func testSplitSizesFollowTheBook() throws {
        let s = try InstructionSplit(count: 1100)
        XCTAssertEqual(s.train, 0..<935)
        XCTAssertEqual(s.test, 935..<1045)
        XCTAssertEqual(s.validation, 1045..<1100)
        // Truncation like Python's int(): 0.85 * 7 = 5.95 -> 5, 0.1 * 7 = 0.7 -> 0.
        let small = try InstructionSplit(count: 7)
        XCTAssertEqual([small.train.count, small.test.count, small.validation.count], [5, 0, 2])
        XCTAssertThrowsError(try InstructionSplit(count: 1100, trainFrac: 0.9, testFrac: 0.1))   // validation empty
        XCTAssertThrowsError(try InstructionSplit(count: 1100, trainFrac: 0, testFrac: 0.1))
        XCTAssertThrowsError(try InstructionSplit(count: 1100, trainFrac: 0.5, testFrac: -0.1))
        XCTAssertThrowsError(try InstructionSplit(count: 1, trainFrac: 0.85, testFrac: 0.1))     // train empty
    }

    func testRealFileSplitsInto935_110_55() throws {
        let url = try instructionDataURL()
        let entries = try readRecords(url)
        XCTAssertEqual(entries.count, 1100)
        let s = try InstructionSplit(count: entries.count)
        XCTAssertEqual([s.train.count, s.test.count, s.validation.count], [935, 110, 55])
    }

    func testPromptFormatsOnBookExamples() {
        let withInput = InstructionEntry(instruction: "Identify the correct spelling of the following word.",
                                         input: "Ocassion", output: "The correct spelling is 'Occasion.'")
        XCTAssertEqual(formatPrompt(withInput, style: .alpaca),
                       "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nIdentify the correct spelling of the following word.\n\n### Input:\nOcassion")
        XCTAssertEqual(formatResponse(withInput, style: .alpaca), "\n\n### Response:\nThe correct spelling is 'Occasion.'")
        XCTAssertEqual(formatPrompt(withInput, style: .phi3), "<|user|>\nIdentify the correct spelling of the following word.\nOcassion")
        XCTAssertEqual(formatResponse(withInput, style: .phi3), "\n<|assistant|>:\nThe correct spelling is 'Occasion.'")
        let noInput = InstructionEntry(instruction: "What is an antonym of 'complicated'?", input: "", output: "An antonym of 'complicated' is 'simple'.")
        XCTAssertEqual(formatPrompt(noInput, style: .alpaca),
                       "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is an antonym of 'complicated'?")
        XCTAssertEqual(formatPrompt(noInput, style: .phi3), "<|user|>\nWhat is an antonym of 'complicated'?")
    }

    /// Every formatted text of the real file, both styles, against the Python reference.
    func testFormattedTextsMatchPythonReference() throws {
        let ref = try InstructReference.load()
        let entries = try readRecords(try instructionDataURL())
        let split = try InstructionSplit(count: entries.count)
        let ranges = ["train": split.train, "validation": split.validation, "test": split.test]
        for style in bookStyles {
            for (name, range) in ranges {
                let expected = try XCTUnwrap(ref.styles[style.rawValue]?[name])
                let texts = entries[range].map { formatFullText($0, style: style) }
                XCTAssertEqual(textsSHA256(texts), expected.texts_sha256, "\(style)/\(name)")
                XCTAssertEqual(Array(texts.prefix(3)), expected.first_texts, "\(style)/\(name)")
            }
        }
    }

    /// The fixture's entries alone (no shared assets needed) give the same texts.
    func testFirstTextsFromFixtureEntries() throws {
        let ref = try InstructReference.load()
        for style in bookStyles {
            for (name, split) in try XCTUnwrap(ref.styles[style.rawValue]) {
                let texts = split.first_entries.map {
                    formatFullText(InstructionEntry(instruction: $0.instruction, input: $0.input, output: $0.output), style: style)
                }
                XCTAssertEqual(texts, split.first_texts, "\(style)/\(name)")
            }
        }
    }
}

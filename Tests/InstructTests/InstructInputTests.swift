import ArtifactKit
import Foundation
import TestSupport
@testable import Instruct
import XCTest

/// Reading instruction files: JSON / JSONL, the three shapes, --field, and every refusal.
final class InstructInputTests: XCTestCase {
    private func parse(_ text: String, _ format: InstructionFileFormat = .jsonl, shape: InstructionShape? = nil,
                       fields: [String] = []) throws -> InstructionFile {
        try InstructionRecords.parse(Data(text.utf8), source: "data/mine.jsonl", format: format,
                                     options: InstructionReadOptions(shape: shape, fields: try InstructionFields(parsing: fields)))
    }

    private func message(_ text: String, _ format: InstructionFileFormat = .jsonl, shape: InstructionShape? = nil, fields: [String] = []) -> String {
        do {
            _ = try parse(text, format, shape: shape, fields: fields)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    private func assertRefused(_ text: String, _ fragments: [String], _ format: InstructionFileFormat = .jsonl, shape: InstructionShape? = nil,
                               fields: [String] = [], file: StaticString = #filePath, line: UInt = #line) {
        let m = message(text, format, shape: shape, fields: fields)
        for fragment in fragments + ["data/mine.jsonl"] {
            XCTAssertTrue(m.contains(fragment), "\(m) lacks \(fragment)", file: file, line: line)
        }
    }

    func testJSONLInEachShapeWithBlankLinesSkippedAndCounted() throws {
        let chat = try parse("""
            {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]}

            {"messages": [{"role": "user", "content": "U2"}, {"role": "assistant", "content": "A2", "weight": 1}], "id": 7}
            \t\r

            """)
        XCTAssertEqual(chat.shape, .chat)
        XCTAssertEqual(chat.records, [.chat([ChatMessage(.system, "S"), ChatMessage(.user, "U"), ChatMessage(.assistant, "A")]),
                                      .chat([ChatMessage(.user, "U2"), ChatMessage(.assistant, "A2")])])
        XCTAssertEqual(chat.places, ["line 1", "line 3"])
        XCTAssertEqual(chat.skippedBlankLines, 2)
        let pairs = try parse("{\"prompt\": \"p\", \"completion\": \"c\"}\r\n{\"prompt\": \"q\", \"completion\": \"\"}")
        XCTAssertEqual(pairs.records, [.promptCompletion(prompt: "p", completion: "c"), .promptCompletion(prompt: "q", completion: "")])
        XCTAssertEqual(pairs.skippedBlankLines, 0)
        let alpaca = try parse("\u{FEFF}{\"instruction\": \"i\", \"output\": \"o\"}\n")
        XCTAssertEqual(alpaca.records, [.alpaca(InstructionEntry(instruction: "i", output: "o"))])
    }

    func testFieldsRenameKeys() throws {
        let qa = try parse(#"{"question": "Q", "context": "C", "answer": "A", "instruction": "ignored"}"#,
                           fields: ["instruction=question", "input=context,output=answer"])
        XCTAssertEqual(qa.records, [.alpaca(InstructionEntry(instruction: "Q", input: "C", output: "A"))])
        let shareGPT = try parse(#"{"conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "hey"}]}"#,
                                 fields: ["messages=conversations", "role=from", "content=value"])
        XCTAssertEqual(shareGPT.records, [.chat([ChatMessage(.user, "hi"), ChatMessage(.assistant, "hey")])])
        XCTAssertEqual(try parse(#"{"q": "x", "a": "y"}"#, fields: ["prompt=q", "completion=a", ""]).records, [.promptCompletion(prompt: "x", completion: "y")])
        // Fields of different shapes may share a key: the record is then ambiguous without --shape.
        let shared = #"{"instruction": "x", "response": "y"}"#
        assertRefused(shared, ["has keys of several shapes (alpaca, prompt-completion)"], fields: ["prompt=instruction", "completion=response"])
        XCTAssertEqual(try parse(shared, shape: .promptCompletion, fields: ["prompt=instruction", "completion=response"]).records,
                       [.promptCompletion(prompt: "x", completion: "y")])
        // The renamed key is named in errors, with the flag that renamed it.
        assertRefused(#"{"question": "Q", "output": "A"}"#, ["line 1 has no \"query\" (the instruction, --field instruction=query) key", "it has: output, question"],
                      fields: ["instruction=query"])
    }

    func testBadFieldFlags() {
        for (flags, fragment) in [(["instruction"], "is not canonical=key"), (["answer=output"], "unknown field \"answer\""),
                                  (["output=a", "output=b"], "mapped twice"), (["input=q", "instruction=q"], "both read the key \"q\""),
                                  (["output=instruction"], "both read the key \"instruction\"")] {
            XCTAssertThrowsError(try InstructionFields(parsing: flags)) { XCTAssertTrue("\($0)".contains(fragment), "\(flags): \($0)") }
        }
    }

    func testMixedShapesNameTheLine() {
        assertRefused("{\"prompt\": \"p\", \"completion\": \"c\"}\n\n{\"instruction\": \"i\", \"output\": \"o\"}",
                      ["line 3 is alpaca (instruction/input/output) but line 1 was prompt-completion (prompt/completion): one file holds one shape"])
        assertRefused(#"[{"prompt": "p", "completion": "c"}, {"messages": []}]"#, ["entry 1 is chat", "entry 0 was prompt-completion"], .json)
        // With --shape every record is read as that shape: the other keys are missing.
        assertRefused("{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"instruction\": \"i\", \"output\": \"o\"}",
                      ["line 2 has no \"prompt\" key (it has: instruction, output)"], shape: .promptCompletion)
    }

    func testUnknownAndAmbiguousShapes() {
        assertRefused(#"{"question": "q", "answer": "a"}"#, ["line 1 matches no shape: it has the keys answer, question", "--field instruction=question"])
        assertRefused(#"{"prompt": "p", "completion": "c", "messages": []}"#, ["line 1 has keys of several shapes (prompt-completion, chat)", "--shape prompt-completion|chat"])
        XCTAssertEqual(try parse(#"{"prompt": "p", "completion": "c", "messages": []}"#, shape: .promptCompletion).records,
                       [.promptCompletion(prompt: "p", completion: "c")])
    }

    func testChatProblemsAreRefusedWithTheMessageIndex() {
        let user = #"{"role": "user", "content": "u"}"#, assistant = #"{"role": "assistant", "content": "a"}"#
        assertRefused("{\"messages\": [\(user)]}", ["line 1, messages: the conversation has no assistant message: nothing to learn"])
        assertRefused("{\"messages\": []}", ["the conversation has no assistant message (the list is empty)"])
        assertRefused("{\"messages\": [\(user), {\"role\": \"human\", \"content\": \"x\"}]}",
                      ["line 1, messages[1]: unknown role \"human\" (expected system, user or assistant)", "human -> user"])
        assertRefused("{\"messages\": [\(assistant), \(user), \(assistant)]}", ["line 1, messages[0] (assistant) has no user or system message before it"])
        assertRefused("{\"messages\": [\(user), \(assistant), \(assistant)]}", ["messages[2] (assistant) has no user or system message before it"])
        assertRefused("{\"messages\": [\(user), \(assistant), \(user)]}", ["the conversation ends with a user message ([2]); the last message must be the assistant's"])
        assertRefused("{\"messages\": [\(user), {\"role\": \"assistant\"}]}", ["line 1, messages[1] has no \"content\" key (it has: role)"])
        assertRefused("{\"messages\": [\(user), {\"role\": \"assistant\", \"content\": [\"a\"]}]}", ["messages[1], key \"content\": expected a string, found a list"])
        assertRefused("{\"messages\": [\(user), 5]}", ["line 1, messages[1] is a number, expected an object with role and content"])
        assertRefused("{\"messages\": \"hi\"}", ["line 1, key \"messages\": expected a list of {role, content} objects, found a string"])
    }

    func testJSONLSyntaxAndTypeErrorsNameTheLine() {
        assertRefused("{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"p\", oops}", ["line 2 is not valid JSON", "(line 2, column"])
        assertRefused("{\"prompt\": \"p\", \"completion\": \"c\"}\n[1, 2]", ["line 2 is a list, expected an object"])
        assertRefused("[{\"prompt\": \"p\", \"completion\": \"c\"}]", ["line 1 is a list"])
        // A JSONL file read as a JSON list.
        assertRefused("{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"q\", \"completion\": \"d\"}", ["not valid JSON", "line 2"], .json)
        assertRefused(#"{"prompt": "p", "completion": "c"}"#, ["expected a JSON list", "found an object", "--format jsonl"], .json)
    }

    func testInvalidUTF8NamesTheLine() {
        var bytes = Data("{\"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"caf".utf8)
        bytes.append(0xE9)   // Latin-1 é
        bytes.append(contentsOf: Data("\", \"completion\": \"c\"}\n".utf8))
        for format in InstructionFileFormat.allCases {
            XCTAssertThrowsError(try InstructionRecords.parse(bytes, source: "data/mine.jsonl", format: format)) { error in
                XCTAssertTrue("\(error)".contains("line 2 is not valid UTF-8 (byte 16 of the line)"), "\(error)")
                XCTAssertTrue("\(error)".contains("iconv"), "\(error)")
            }
        }
        XCTAssertNil(InstructionRecords.firstInvalidUTF8(Array("naïve – ☃ 😀".utf8)))
        XCTAssertEqual(InstructionRecords.firstInvalidUTF8([0x61, 0xC0, 0x80]), 1)          // overlong
        XCTAssertEqual(InstructionRecords.firstInvalidUTF8([0xED, 0xA0, 0x80]), 0)          // surrogate
        XCTAssertEqual(InstructionRecords.firstInvalidUTF8([0x61, 0x62, 0xE2, 0x82]), 2)    // cut short
    }

    func testFormatFromTheExtension() throws {
        XCTAssertEqual(try InstructionFileFormat.detect(URL(fileURLWithPath: "a/b.JSON")), .json)
        XCTAssertEqual(try InstructionFileFormat.detect(URL(fileURLWithPath: "a/b.jsonl")), .jsonl)
        XCTAssertEqual(try InstructionFileFormat.detect(URL(fileURLWithPath: "a/b.ndjson")), .jsonl)
        XCTAssertThrowsError(try InstructionFileFormat.detect(URL(fileURLWithPath: "a/b.txt"))) {
            XCTAssertTrue("\($0)".contains("--format json"), "\($0)")
        }
    }

    /// The split files are written with canonical keys and read back unchanged, in every shape.
    func testWrittenRecordsReadBack() throws {
        let records: [InstructionRecord] = [.chat([ChatMessage(.system, "s\u{1}"), ChatMessage(.user, "naïve \"q\""), ChatMessage(.assistant, "a\n")])]
        let text = String(decoding: InstructionRecords.encoded(records), as: UTF8.self)
        XCTAssertEqual(text, """
            [
                {
                    "messages": [
                        {
                            "role": "system",
                            "content": "s\\u0001"
                        },
                        {
                            "role": "user",
                            "content": "naïve \\"q\\""
                        },
                        {
                            "role": "assistant",
                            "content": "a\\n"
                        }
                    ]
                }
            ]

            """)
        XCTAssertEqual(try InstructionRecords.parse(Data(text.utf8), source: "x").records, records)
        let pairs: [InstructionRecord] = [.promptCompletion(prompt: "p", completion: "c")]
        XCTAssertEqual(try InstructionRecords.parse(InstructionRecords.encoded(pairs), source: "x").records, pairs)
    }
}

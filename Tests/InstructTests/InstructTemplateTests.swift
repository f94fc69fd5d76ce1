import ArtifactKit
import Foundation
import GPT2Tokenizer
import TestSupport
import Instruct
import XCTest

/// `Tests/Fixtures/instruct/templates.json`, written by tools/reference/make_template_fixture.py:
/// every record shape rendered in every template (ChatML by transformers' apply_chat_template),
/// with GPT-2 tokens and the response spans (ChatML's from its assistant token mask).
struct TemplateReference {
    struct Rendered: Decodable { var text: String; var prompt: String; var tokens: [Int]; var spans: [[Int]]; var reference: String }
    var records: [InstructionRecord]
    var templates: [String: [Rendered]]

    static func load() throws -> TemplateReference {
        let data = try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("instruct/templates.json"))
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let recordsJSON = try JSONSerialization.data(withJSONObject: try XCTUnwrap(top["records"]))
        struct Top: Decodable { var templates: [String: [Rendered]] }
        // The fixture mixes shapes in one list; each record is read on its own.
        let objects = try XCTUnwrap(try JSONSerialization.jsonObject(with: recordsJSON) as? [Any])
        let records = try objects.map { object in
            try InstructionRecords.parse(try JSONSerialization.data(withJSONObject: [object]), source: "templates.json").records[0]
        }
        return TemplateReference(records: records, templates: try JSONDecoder().decode(Top.self, from: data).templates)
    }
}

final class InstructTemplateTests: XCTestCase {
    func testEveryShapeInEveryTemplateRendersLikeTheReference() throws {
        let ref = try TemplateReference.load()
        XCTAssertEqual(Set(ref.records.map(\.shape)), Set(InstructionShape.allCases))
        for style in PromptStyle.allCases {
            let expected = try XCTUnwrap(ref.templates[style.rawValue])
            for (i, record) in ref.records.enumerated() {
                XCTAssertEqual(formatFullText(record, style: style), expected[i].text, "\(style) record \(i)")
                XCTAssertEqual(formatPrompt(record, style: style), expected[i].prompt, "\(style) record \(i)")
                XCTAssertEqual(record.reference, expected[i].reference, "record \(i)")
            }
        }
    }

    func testTokensAndResponseSpansMatchTheReference() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let tok = try GPT2BPETokenizer(directory: assets.appendingPathComponent("gpt2"))
        let ref = try TemplateReference.load()
        for style in PromptStyle.allCases {
            let expected = try XCTUnwrap(ref.templates[style.rawValue])
            let t = try tokenizeInstructions(ref.records, style: style) { try tok.encode($0) }
            XCTAssertEqual(t.promptNotPrefix, [], "\(style)")
            for i in ref.records.indices {
                XCTAssertEqual(t.rows[i], expected[i].tokens, "\(style) record \(i)")
                XCTAssertEqual(t.responseSpans[i].map { [$0.lowerBound, $0.upperBound] }, expected[i].spans, "\(style) record \(i)")
            }
        }
    }

    /// The book's strings are the one-exchange case of every rule.
    func testOneExchangeIsTheBooksTemplateWhateverTheShape() {
        let entry = InstructionEntry(instruction: "Say hi.", output: "Hi.")
        let asPair = InstructionRecord.promptCompletion(prompt: "Say hi.", completion: "Hi.")
        let asChat = InstructionRecord.chat([ChatMessage(.user, "Say hi."), ChatMessage(.assistant, "Hi.")])
        for style in PromptStyle.allCases {
            XCTAssertEqual(formatFullText(asPair, style: style), formatFullText(entry, style: style), "\(style)")
            XCTAssertEqual(formatFullText(asChat, style: style), formatFullText(entry, style: style), "\(style)")
        }
        XCTAssertEqual(formatFullText(entry, style: .chatml), "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHi.<|im_end|>\n")
        XCTAssertEqual(formatPrompt(entry, style: .chatml), "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(formatPrompt(InstructionEntry(instruction: "Add.", input: "1 + 1", output: "2"), style: .chatml),
                       "<|im_start|>user\nAdd.\n\n1 + 1<|im_end|>\n<|im_start|>assistant\n")
    }

    func testChatExchangesJoinSystemAndUserMessages() {
        let chat = InstructionRecord.chat([ChatMessage(.system, "S"), ChatMessage(.user, "U1"), ChatMessage(.assistant, "A1"),
                                           ChatMessage(.user, "U2"), ChatMessage(.assistant, "A2")])
        XCTAssertEqual(chat.exchanges, [InstructionEntry(instruction: "S\n\nU1", output: "A1"), InstructionEntry(instruction: "U2", output: "A2")])
        XCTAssertEqual(chat.reference, "A2")
        XCTAssertEqual(chat.responseCount, 2)
        XCTAssertEqual(formatFullText(chat, style: .alpaca),
                       alpacaPreamble + "\n\n### Instruction:\nS\n\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2\n\n### Response:\nA2")
        XCTAssertEqual(formatPrompt(chat, style: .phi3), "<|user|>\nS\n\nU1\n<|assistant|>:\nA1\n<|user|>\nU2")
        XCTAssertEqual(PromptStyle.chatml.segments(chat).filter(\.isResponse).map(\.text), ["A1<|im_end|>\n", "A2<|im_end|>\n"])
    }

    /// A ChatML response ends at <|im_end|>: what the model adds after it is the next turn.
    func testChatMLResponsesAreCutAtTheEndMarker() {
        let prompt = formatPrompt(InstructionEntry(instruction: "Hi", output: "x"), style: .chatml)
        let generated = prompt + " Hello there.<|im_end|>\n<|im_start|>user\nmore"
        XCTAssertEqual(extractResponse(generatedText: generated, promptText: prompt, marker: PromptStyle.chatml.responseMarker,
                                       end: PromptStyle.chatml.responseEnd), "Hello there.")
        XCTAssertEqual(extractResponse(generatedText: prompt + "no end", promptText: prompt, marker: "", end: "<|im_end|>"), "no end")
    }

    func testJudgePromptOfAChatIsItsAlpacaPromptAndLastAnswer() {
        let chat = InstructionRecord.chat([ChatMessage(.user, "U1"), ChatMessage(.assistant, "A1"), ChatMessage(.user, "U2"), ChatMessage(.assistant, "A2")])
        let p = Judge.prompt(record: chat, modelResponse: "R")
        XCTAssertTrue(p.hasPrefix("Given the input `" + alpacaPreamble + "\n\n### Instruction:\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2` and correct output `A2`, score the model response `R`"), p)
    }
}

/// The loss mask with several responses per row: every assistant turn counts, nothing else.
final class InstructMaskTests: XCTestCase {
    func testSpansMaskEverythingButTheResponsesAndTheEnd() {
        let row = Array(10..<20)   // tokens 10 ... 19
        let batch = collateInstructionBatch([row], allowedMaxLength: nil, responseSpans: [[2..<4, 6..<8]])
        // target t is token t+1: counted for tokens 2, 3, 6, 7 and the end-of-text after the row.
        let ignore: Int32 = -100
        XCTAssertEqual(Array(batch.targets), [ignore, 12, 13, ignore, ignore, 16, 17, ignore, ignore, 50256])
        XCTAssertEqual(Array(batch.inputs), row.map(Int32.init))
        // Without masking every target counts; a single span to the end is the book's prompt mask.
        XCTAssertEqual(collateInstructionBatch([row], allowedMaxLength: nil, responseSpans: nil).countedTargets(), 10)
        XCTAssertEqual(collateInstructionBatch([row], allowedMaxLength: nil, responseSpans: [[4..<10]]),
                       collateInstructionBatch([row], allowedMaxLength: nil, maskPromptLengths: [4]))
    }

    func testMultiTurnChatMLRowCountsBothAssistantTurns() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let tok = try GPT2BPETokenizer(directory: assets.appendingPathComponent("gpt2"))
        let chat = InstructionRecord.chat([ChatMessage(.system, "Be brief."), ChatMessage(.user, "Hi."), ChatMessage(.assistant, "Hello!"),
                                           ChatMessage(.user, "Bye."), ChatMessage(.assistant, "Goodbye!")])
        let t = try tokenizeInstructions([chat], style: .chatml) { try tok.encode($0) }
        let shard = try InstructionShard(rows: t.rows, responseSpans: t.responseSpans)
        XCTAssertEqual(shard.formatVersion, 2)
        let batch = collateInstructionBatch(shard, indices: [0], maskPrompt: true)
        let counted = batch.targets.enumerated().filter { $0.element != -100 }.map { Int($0.element) }
        // The counted targets decode to exactly the two answers with their end markers, then <|endoftext|>.
        XCTAssertEqual(counted.last, 50256)
        XCTAssertEqual(try tok.decode(Array(counted.dropLast())), "Hello!<|im_end|>\nGoodbye!<|im_end|>\n")
        XCTAssertEqual(t.responseSpans[0].count, 2)
    }
}

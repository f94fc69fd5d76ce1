import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import GPT2Weights
import TestSupport
import Instruct
import XCTest

/// `train instruct` and `evaluate instruct` on a chat set in the ChatML template (tiny model).
final class InstructChatEvaluateTests: XCTestCase {
    var dir: URL!
    var prepared: URL!
    var trained: URL!

    /// 30 chats, every third with two turns: 25 train, 3 test, 2 validation rows.
    static func chats() -> [InstructionRecord] {
        TinyInstruct.entries().enumerated().map { i, e in
            var messages = [ChatMessage(.system, "Answer briefly."), ChatMessage(.user, e.instruction), ChatMessage(.assistant, e.output)]
            if i % 3 == 0 { messages += [ChatMessage(.user, "Again, please."), ChatMessage(.assistant, e.output)] }
            return .chat(messages)
        }
    }

    override func setUpWithError() throws {
        dir = try TestPaths.makeTempDir("ichat")
        let input = dir.appendingPathComponent("chat.jsonl")
        let lines = try Self.chats().map { record in
            String(decoding: try JSONSerialization.data(withJSONObject: ["messages": record.messages.map { ["role": $0.role.rawValue, "content": $0.content] }]),
                   as: UTF8.self)
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: input)
        prepared = dir.appendingPathComponent("prepared")
        try prepareInstructionDataset(InstructionPrepareOptions(input: input, vocabDirectory: try TinyInstruct.vocab(), output: prepared, style: .chatml))
        trained = dir.appendingPathComponent("train")
        var s = TinyInstruct.settings()
        s.maxSteps = 2
        s.maskInstructions = true
        _ = try InstructTrainStage.run(TinyInstruct.options(prepared, trained, s))
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testResponsesOfAChatSetKeepTheMessagesAndAnswerTheLastTurn() throws {
        var o = InstructEvaluateOptions(model: trained, prepared: prepared, output: dir.appendingPathComponent("eval"), vocabDirectory: try TinyInstruct.vocab())
        o.maxNewTokens = 12
        let r = try InstructEvaluateStage.run(o)
        let test = try InstructionDataset(directory: prepared).entries(.test)
        XCTAssertEqual(test, Array(Self.chats()[25..<28]))
        // The response file: each test chat's messages (the last assistant message is the reference) + model_response.
        let data = try Data(contentsOf: o.output.appendingPathComponent(InstructEvaluateStage.responsesFile))
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(list.count, 3)
        for (i, element) in list.enumerated() {
            XCTAssertEqual(Set(element.keys), ["messages", "model_response"])
            XCTAssertEqual(element["model_response"] as? String, r.responses[i])
            let messages = try XCTUnwrap(element["messages"] as? [[String: String]])
            XCTAssertEqual(messages.map { $0["content"] }, test[i].messages.map(\.content))
            XCTAssertEqual(r.scores[i].tokenF1, OverlapScore.tokenF1(response: r.responses[i], reference: test[i].reference))
        }
        XCTAssertEqual(r.metrics["test"]?["rows"], 3)

        // Each response is generated from the ChatML prompt (the conversation up to the last
        // assistant header) and cut at <|im_end|>.
        let ckpt = try loadCheckpoint(from: trained.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ckpt.metadata["prompt_style"], "chatml")
        let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
        let tok = try GPT2BPETokenizer(directory: try TinyInstruct.vocab())
        for (i, record) in test.enumerated() {
            let prompt = formatPrompt(record, style: .chatml)
            XCTAssertTrue(prompt.hasSuffix("<|im_start|>assistant\n"))
            let ids = tok.encodeOrdinary(prompt).map(Int32.init)
            let new = try model.generateUncached(prompts: [ids], options: GenerationOptions(maxNewTokens: 12, eosId: 50256))[0]
            let text = try tok.decode((ids + new).map(Int.init))
            XCTAssertEqual(r.responses[i], extractResponse(generatedText: text, promptText: prompt, marker: "", end: "<|im_end|>"))
        }
    }

    /// With mask_instructions the loss counts only the assistant turns (both of a two-turn chat).
    func testMaskedLossCountsEveryAssistantTurn() throws {
        let data = try InstructionDataset(directory: prepared)
        let shard = try data.shard(.train)
        XCTAssertEqual(shard.formatVersion, 2)
        XCTAssertEqual(shard.responseSpans(row: 0).count, 2)
        XCTAssertEqual(shard.responseSpans(row: 1).count, 1)
        let tok = try GPT2BPETokenizer(directory: try TinyInstruct.vocab())
        let batch = collateInstructionBatch(shard, indices: [0], maskPrompt: true)
        let counted = batch.targets.filter { $0 != -100 }.map(Int.init)
        let answer = TinyInstruct.entries()[0].output
        XCTAssertEqual(try tok.decode(Array(counted.dropLast())), "\(answer)<|im_end|>\n\(answer)<|im_end|>\n")
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
@testable import ModelServer
import XCTest

/// The pieces under the generation routes: the continuous-batching session against the book's
/// loop, and the text stream's UTF-8 and stop-string handling.
final class GenerationPiecesTests: XCTestCase {
    private func tinyModel() throws -> GPT2Model {
        let config = GPT2Config(name: "t", vocabSize: 300, contextLength: 40, embDim: 16, nHeads: 2, nLayers: 2, dropRate: 0, qkvBias: true)
        let layout = ParameterLayout(config: config, head: .languageModel)
        var rng = SeededGenerator(seed: 5)
        let params = (0..<layout.totalCount).map { _ in Float(Double(rng.next() % 2000) / 1000.0 - 1.0) * 0.3 }
        return try GPT2Model(layout: layout, params: params)
    }

    func testSessionRowsJoiningLateGiveTheTokensOfGenerateAlone() throws {
        let model = try tinyModel()
        let session = try GenerationSession(model: model, slots: 3, context: 40)
        let prompts: [[Int32]] = [[1, 2, 3], [7], [9, 8, 7, 6, 5, 4]]
        let options = [GenerationOptions(maxNewTokens: 12), GenerationOptions(maxNewTokens: 7, temperature: 1.2, topK: 20, seed: 3),
                       GenerationOptions(maxNewTokens: 40, eosId: 11)]
        var produced: [Int: [Int32]] = [:], finish: [Int: GenerationSession.FinishReason] = [:]
        var slotOf: [Int: Int] = [:]
        slotOf[try session.add(prompt: prompts[0], options: options[0])] = 0
        for step in 0..<60 {
            if step == 2 { slotOf[try session.add(prompt: prompts[1], options: options[1])] = 1 }
            if step == 5 { slotOf[try session.add(prompt: prompts[2], options: options[2])] = 2 }
            for e in session.step() {
                let i = slotOf[e.slot]!
                if let t = e.token { produced[i, default: []].append(t) }
                if let f = e.finished { finish[i] = f; slotOf[e.slot] = nil }
            }
        }
        for i in 0..<3 {
            // generate() goes on past the context by cropping; a session row stops when its slot is
            // full: 40 positions hold the prompt and all new tokens but the last, which is never fed back.
            let want = try model.generate(prompts: [prompts[i]], options: options[i])[0].prefix(41 - prompts[i].count)
            XCTAssertEqual(produced[i] ?? [], Array(want), "prompt \(i)")
        }
        XCTAssertEqual(finish[0], .length)
        XCTAssertEqual(finish[1], .length)
        XCTAssertEqual(session.activeCount, 0)
        // Prompt 2 stops at the end-of-text id, or when its 40-position slot is full.
        XCTAssertEqual(finish[2], produced[2]?.count == 41 - prompts[2].count ? .length : .endOfText)
    }

    func testSessionRefusesPromptsWithoutRoomAndFreesRemovedRows() throws {
        let session = try GenerationSession(model: try tinyModel(), slots: 1, context: 8)
        XCTAssertThrowsError(try session.add(prompt: Array(repeating: 1, count: 8), options: GenerationOptions(maxNewTokens: 1)))
        let slot = try session.add(prompt: [1, 2], options: GenerationOptions(maxNewTokens: 5))
        XCTAssertThrowsError(try session.add(prompt: [1], options: GenerationOptions(maxNewTokens: 1)), "one slot only")
        session.remove(slot)
        XCTAssertTrue(session.step().isEmpty)
        XCTAssertNoThrow(try session.add(prompt: [1], options: GenerationOptions(maxNewTokens: 1)))
    }

    func testTextStreamJoinsSplitCharactersAndHoldsBackStops() {
        var stream = TextStream(stops: ["<|im_end|>"])
        let euro = Array("€".utf8)   // 3 bytes
        XCTAssertEqual(stream.push([UInt8(ascii: "a"), euro[0]]), "a")
        XCTAssertEqual(stream.push([euro[1]]), "")
        XCTAssertEqual(stream.push([euro[2]] + Array(" ok<|im".utf8)), "€ ok")
        XCTAssertEqual(stream.push(Array("_en".utf8)), "")
        XCTAssertEqual(stream.push(Array("d|> after".utf8)), "")
        XCTAssertTrue(stream.stopped)
        XCTAssertEqual(stream.finish(), "")

        var other = TextStream(stops: ["<|im_end|>"])
        XCTAssertEqual(other.push(Array("x <|i".utf8)), "x ")
        XCTAssertEqual(other.push(Array("nvalid".utf8)), "<|invalid")
        XCTAssertEqual(other.push([0xE2]), "")
        XCTAssertEqual(other.finish(), "\u{FFFD}")
        XCTAssertFalse(other.stopped)
    }
}

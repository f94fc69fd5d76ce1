import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// KV-cached, batched generation against the book's uncached loop (full forward every step).
final class GenerationTests: XCTestCase {
    // Context length 8: prompts plus 9 new tokens overflow it, which exercises the cropping.
    let ragged: [[Int32]] = [[5], [1, 2, 3, 4], [7, 7, 1, 9, 20, 3], [22, 0]]

    func testCachedGreedyEqualsUncachedForOnePrompt() throws {
        let model = try TinyModel.model()
        for newTokens in [1, 4, 9] {
            let options = GenerationOptions(maxNewTokens: newTokens)
            let cached = try model.generate(prompts: [[3, 1, 4]], options: options)
            let uncached = try model.generateUncached(prompts: [[3, 1, 4]], options: options)
            XCTAssertEqual(cached, uncached)
            XCTAssertEqual(cached[0].count, newTokens)
        }
    }

    func testCachedRaggedBatchEqualsUncachedGreedyAndSampled() throws {
        let model = try TinyModel.model()
        for options in [GenerationOptions(maxNewTokens: 9),
                        GenerationOptions(maxNewTokens: 9, temperature: 1.0, topK: 5, seed: 42),
                        GenerationOptions(maxNewTokens: 3, temperature: 0.7, seed: 7)] {
            let cached = try model.generate(prompts: ragged, options: options)
            let uncached = try model.generateUncached(prompts: ragged, options: options)
            XCTAssertEqual(cached, uncached, "\(options)")
            // Each row is independent of the others in the batch (sampling streams follow the
            // row index, so compare greedy runs only).
            for (r, prompt) in ragged.enumerated() where options.temperature == 0 {
                XCTAssertEqual(try model.generate(prompts: [prompt], options: options)[0], cached[r])
            }
        }
        let a = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 6, temperature: 2, seed: 1))
        let b = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 6, temperature: 2, seed: 2))
        XCTAssertNotEqual(a, b, "different seeds should sample differently")
    }

    func testRowsStopAtEndOfText() throws {
        let model = try TinyModel.model()
        let free = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 6))
        let eos = free[1][2]   // the third token row 1 produces
        let stopped = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 6, eosId: eos))
        let reference = try model.generateUncached(prompts: ragged, options: GenerationOptions(maxNewTokens: 6, eosId: eos))
        XCTAssertEqual(stopped, reference)
        XCTAssertEqual(stopped[1], Array(free[1].prefix(while: { $0 != eos })))
        for r in ragged.indices {
            XCTAssertFalse(stopped[r].contains(eos))
            XCTAssertEqual(stopped[r], Array(free[r].prefix(while: { $0 != eos })))
        }
    }

    /// A batch as wide as evaluate's default (32) and wider, with prompts of every length and rows
    /// stopping at different steps: each row still equals its own uncached generation.
    func testWideRaggedBatchWithEarlyStopsEqualsUncached() throws {
        let model = try TinyModel.model()
        var rng = SeededGenerator(seed: 11)
        let prompts: [[Int32]] = (0..<40).map { _ in
            (0..<(1 + Int(rng.next() % 7))).map { _ in Int32(rng.next() % 23) }
        }
        let free = try model.generate(prompts: prompts, options: GenerationOptions(maxNewTokens: 6))
        // The most frequent generated token as end-of-text makes many rows stop early, at different steps.
        let counts = Dictionary(free.joined().map { ($0, 1) }, uniquingKeysWith: +)
        let eos = counts.max { $0.value < $1.value }!.key
        let options = GenerationOptions(maxNewTokens: 6, eosId: eos)
        let cached = try model.generate(prompts: prompts, options: options)
        XCTAssertEqual(cached, try model.generateUncached(prompts: prompts, options: options))
        XCTAssertGreaterThan(Set(cached.map(\.count)).count, 2, "rows should stop at different steps: \(cached.map(\.count))")
        // Split into evaluate-style chunks of 32 + 8: the same rows.
        let chunked = try model.generate(prompts: Array(prompts[..<32]), options: options)
            + model.generate(prompts: Array(prompts[32...]), options: options)
        XCTAssertEqual(chunked, cached)
    }

    func testTopKOneIsGreedyAndBadPromptsAreRejected() throws {
        let model = try TinyModel.model()
        let greedy = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 5))
        let top1 = try model.generate(prompts: ragged, options: GenerationOptions(maxNewTokens: 5, temperature: 1.5, topK: 1))
        XCTAssertEqual(greedy, top1)
        XCTAssertThrowsError(try model.generate(prompts: [[1], []], options: GenerationOptions(maxNewTokens: 2)))
        XCTAssertThrowsError(try model.generate(prompts: [[1, 99]], options: GenerationOptions(maxNewTokens: 2))) { error in
            XCTAssertTrue("\(error)".contains("token id 99 at prompt 0, position 1"), "\(error)")
        }
    }
}

import Foundation
@testable import GPT2Tokenizer
import TestSupport
import XCTest

/// The heap merge (used for pieces over 128 bytes) must give exactly what tiktoken's scan gives.
/// The fixture proves the scan against tiktoken on ordinary text; here both strategies encode
/// every fixture text plus long random pieces, each forced onto one path.
final class MergeStrategyTests: XCTestCase {
    private func encode(_ text: String, _ encoder: inout BytePairEncoder) -> [Int] {
        var text = text
        var output = [Int]()
        text.withUTF8 { encoder.encodeOrdinary($0, into: &output) }
        return output
    }

    func testHeapMergeEqualsScanMerge() throws {
        let tokenizer = try SharedTokenizer.get()
        var scanOnly = BytePairEncoder(vocabulary: tokenizer.vocabulary)
        scanOnly.heapMergeThreshold = .max
        var heapOnly = BytePairEncoder(vocabulary: tokenizer.vocabulary)
        heapOnly.heapMergeThreshold = 1

        var texts = try loadJSONLines("encode.jsonl", as: EncodeCase.self).filter { $0.set != "sms" }.map(\.text)
        var generator = SplitMix64(seed: 7)
        let alphabets: [[String]] = [["a", "b"], ["e", "r", "t", "s"], [" "], ["\n", " "], ["!", "-", "="],
                                     ["1", "0", "9"], ["é", "è"], ["日", "本"], ["😀", "\u{200D}"]]
        for alphabet in alphabets {
            for _ in 0..<6 {
                let length = 100 + Int(generator.next() % 600)
                texts.append((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }.joined())
            }
        }
        var differences = [String]()
        for text in texts {
            let scanned = encode(text, &scanOnly)
            let heaped = encode(text, &heapOnly)
            if scanned != heaped { differences.append("\"\(visible(text))\": scan \(scanned), heap \(heaped)") }
            XCTAssertEqual(scanned, tokenizer.encodeOrdinary(text))
        }
        XCTAssertEqual(differences.count, 0, differences.prefix(5).joined(separator: "\n"))
    }
}

final class PieceCacheTests: XCTestCase {
    /// A cache that keeps overflowing (and so keeps being reset) changes no ids.
    func testCacheResetKeepsResultsExact() throws {
        let tokenizer = try SharedTokenizer.get()
        var tiny = BytePairEncoder(vocabulary: tokenizer.vocabulary)
        // A few kilobytes above the bare vocabulary: resets every few dozen new pieces.
        tiny.cacheByteLimit = tokenizer.vocabulary.tokens.storageBytes + 4_000
        var resets = 0
        for entry in try loadJSONLines("encode.jsonl", as: EncodeCase.self) where entry.mode == "ordinary" {
            var text = entry.text
            var output = [Int]()
            let before = tiny.cachedPieceCount
            text.withUTF8 { tiny.encodeOrdinary($0, into: &output) }
            if tiny.cachedPieceCount < before { resets += 1 }
            XCTAssertEqual(output, entry.ids, visible(entry.text))
        }
        XCTAssertGreaterThan(resets, 10, "the cache should have been reset many times")
    }
}

/// A small seeded generator, so the random pieces are the same on every run.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

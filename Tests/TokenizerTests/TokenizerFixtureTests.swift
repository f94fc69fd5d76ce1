import ArtifactKit
import Foundation
import GPT2Tokenizer
import TestSupport
import XCTest

/// The tokenizer loaded once from the shared GPT-2 vocabulary, or a skip when it is absent.
enum SharedTokenizer {
    static let vocabularyDirectory: URL? = TestPaths.sharedAssets?.appendingPathComponent("gpt2")

    private static let loaded: Result<GPT2BPETokenizer, Error>? = vocabularyDirectory.map { directory in
        Result { try GPT2BPETokenizer(directory: directory) }
    }

    static func get() throws -> GPT2BPETokenizer {
        guard let loaded else {
            throw XCTSkip("needs the GPT-2 vocabulary in ../shared/assets/gpt2 (or $LLMFT_ASSETS/gpt2); "
                          + "it is absent on this machine, so the tokenizer tests that need it are skipped")
        }
        return try loaded.get()
    }
}

/// One line of Tests/Fixtures/tokenizer/encode.jsonl (made by tools/reference/make_tokenizer_fixture.py).
struct EncodeCase: Decodable {
    let set: String
    let mode: String
    let text: String
    let ids: [Int]?
    let error: String?
}

struct DecodeCase: Decodable {
    let ids: [Int]
    let text: String
}

func loadJSONLines<T: Decodable>(_ name: String, as type: T.Type) throws -> [T] {
    let url = TestPaths.fixtures.appendingPathComponent("tokenizer/\(name)")
    let data = try Data(contentsOf: url)
    let decoder = JSONDecoder()
    var cases = [T]()
    for (number, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
        do {
            cases.append(try decoder.decode(T.self, from: Data(line)))
        } catch {
            XCTFail("\(url.path) line \(number + 1): \(error)")
        }
    }
    return cases
}

/// Shows a string with every non-ASCII or invisible scalar escaped, for failure messages.
func visible(_ text: String) -> String {
    text.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
}

final class TokenizerFixtureTests: XCTestCase {
    /// Every fixture entry (the book's examples, all SMS texts, all instruction prompts, and the
    /// fuzz set) must encode to exactly tiktoken's ids and decode back to the same text.
    func testEncodeMatchesTiktokenOnEveryFixtureText() throws {
        let tokenizer = try SharedTokenizer.get()
        let cases = try loadJSONLines("encode.jsonl", as: EncodeCase.self)
        XCTAssertGreaterThan(cases.count, 10_000, "fixture looks truncated")
        var countsBySet = [String: Int]()
        var failures = [String]()
        for (index, entry) in cases.enumerated() {
            countsBySet[entry.set, default: 0] += 1
            let result: Result<[Int], Error>
            switch entry.mode {
            case "ordinary": result = .success(tokenizer.encodeOrdinary(entry.text))
            case "allow_eot": result = Result { try tokenizer.encode(entry.text, allowedSpecial: [GPT2BPETokenizer.endOfText]) }
            case "default": result = Result { try tokenizer.encode(entry.text) }
            default:
                XCTFail("unknown mode \(entry.mode) on line \(index + 1)")
                continue
            }
            switch (result, entry.ids) {
            case (.success(let ids), let expected?):
                if ids != expected {
                    failures.append("line \(index + 1) [\(entry.set)/\(entry.mode)] \"\(visible(entry.text))\": got \(ids), tiktoken \(expected)")
                } else if (try? tokenizer.decode(ids)) != entry.text {
                    failures.append("line \(index + 1): decode does not give back \"\(visible(entry.text))\"")
                }
            case (.failure(let error), nil) where entry.error == "disallowed_special":
                if error as? TokenizerError != .disallowedSpecialToken(GPT2BPETokenizer.endOfText) {
                    failures.append("line \(index + 1): wrong error \(error)")
                }
            case (.success(let ids), nil):
                failures.append("line \(index + 1): expected \(entry.error ?? "an error"), got ids \(ids)")
            case (.failure(let error), _):
                failures.append("line \(index + 1): unexpected error \(error)")
            }
        }
        XCTAssertEqual(countsBySet["sms"], 5572, "every SMS text of the collection")
        XCTAssertEqual(countsBySet["instruction"], 1100, "every instruction entry")
        XCTAssertGreaterThanOrEqual(countsBySet["fuzz"] ?? 0, 3000)
        XCTAssertEqual(failures.count, 0, "\(failures.count) of \(cases.count) entries differ from tiktoken:\n"
                       + failures.prefix(15).joined(separator: "\n"))
    }

    /// tiktoken's decode (UTF-8 with errors="replace") of id sequences that cut characters apart.
    func testDecodeMatchesTiktokenIncludingInvalidUTF8() throws {
        let tokenizer = try SharedTokenizer.get()
        let cases = try loadJSONLines("decode.jsonl", as: DecodeCase.self)
        XCTAssertGreaterThan(cases.count, 1000, "fixture looks truncated")
        var failures = [String]()
        var replaced = 0
        for (index, entry) in cases.enumerated() {
            let text = try tokenizer.decode(entry.ids)
            if text.contains("\u{FFFD}") { replaced += 1 }
            if text != entry.text {
                failures.append("line \(index + 1) \(entry.ids): got \"\(visible(text))\", tiktoken \"\(visible(entry.text))\"")
            }
        }
        XCTAssertGreaterThan(replaced, 100, "the fixture should exercise U+FFFD replacement")
        XCTAssertEqual(failures.count, 0, failures.prefix(15).joined(separator: "\n"))
    }

    /// Parallel batch encoding gives the same ids, in order, as one-by-one encoding.
    func testBatchEncodeMatchesSequentialEncode() throws {
        let tokenizer = try SharedTokenizer.get()
        let cases = try loadJSONLines("encode.jsonl", as: EncodeCase.self).filter { $0.mode == "allow_eot" || $0.set == "sms" }
        let texts = cases.map(\.text)
        let batch = try tokenizer.encodeBatch(texts, allowedSpecial: [GPT2BPETokenizer.endOfText], threads: 3)
        XCTAssertEqual(batch.count, texts.count)
        for (index, text) in texts.enumerated() {
            XCTAssertEqual(batch[index], try tokenizer.encode(text, allowedSpecial: [GPT2BPETokenizer.endOfText]), visible(text))
        }
        XCTAssertThrowsError(try tokenizer.encodeBatch(["fine", "not <|endoftext|> fine"], threads: 2)) { error in
            XCTAssertEqual(error as? TokenizerError, .disallowedSpecialToken(GPT2BPETokenizer.endOfText))
        }
        XCTAssertEqual(try tokenizer.encodeBatch([]), [])
    }
}

import ArtifactKit
import Foundation
import GPT2Tokenizer
import TestSupport
import XCTest

final class TokenizerBehaviourTests: XCTestCase {
    func testVocabularySizeAndEndOfText() throws {
        let tokenizer = try SharedTokenizer.get()
        XCTAssertEqual(tokenizer.vocabularySize, 50257)
        XCTAssertEqual(try tokenizer.decode([GPT2BPETokenizer.endOfTextID]), GPT2BPETokenizer.endOfText)
    }

    /// The book's example (chapter 2): ids quoted in the text, produced by tiktoken.
    func testBookExampleWithAllowedEndOfText() throws {
        let tokenizer = try SharedTokenizer.get()
        let text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
        let ids = try tokenizer.encode(text, allowedSpecial: [GPT2BPETokenizer.endOfText])
        XCTAssertEqual(ids, [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250,
                             8812, 2114, 286, 617, 34680, 27271, 13])
        XCTAssertEqual(try tokenizer.decode(ids), text)
        XCTAssertEqual(tokenizer.encodeOrdinary("Akwirw ier"), [33901, 86, 343, 86, 220, 959])
    }

    func testDisallowedEndOfTextThrowsByDefault() throws {
        let tokenizer = try SharedTokenizer.get()
        XCTAssertThrowsError(try tokenizer.encode("before <|endoftext|> after")) { error in
            XCTAssertEqual(error as? TokenizerError, .disallowedSpecialToken("<|endoftext|>"))
            XCTAssertTrue("\(error)".contains("allowedSpecial"), "message should say how to allow it: \(error)")
        }
        // Unknown strings in the allowed set change nothing (tiktoken ignores them too).
        XCTAssertThrowsError(try tokenizer.encode("<|endoftext|>", allowedSpecial: ["<|startoftext|>"]))
        // Near misses are ordinary text.
        XCTAssertEqual(try tokenizer.encode("<|endoftext"), tokenizer.encodeOrdinary("<|endoftext"))
    }

    func testEndOfTextAsOrdinaryText() throws {
        let tokenizer = try SharedTokenizer.get()
        let ids = tokenizer.encodeOrdinary("<|endoftext|>")
        XCTAssertEqual(ids, [27, 91, 437, 1659, 5239, 91, 29])
        XCTAssertFalse(ids.contains(GPT2BPETokenizer.endOfTextID))
        XCTAssertEqual(try tokenizer.decode(ids), "<|endoftext|>")
    }

    /// Text on each side of an allowed special token is pre-tokenized on its own, so the spaces
    /// before it stay one piece instead of lending one space to "<|".
    func testSegmentsAroundSpecialTokenAreEncodedSeparately() throws {
        let tokenizer = try SharedTokenizer.get()
        let ids = try tokenizer.encode("a  <|endoftext|>", allowedSpecial: [GPT2BPETokenizer.endOfText])
        XCTAssertEqual(ids, tokenizer.encodeOrdinary("a  ") + [GPT2BPETokenizer.endOfTextID])
    }

    func testDecodeReplacesInvalidUTF8LikePython() throws {
        let tokenizer = try SharedTokenizer.get()
        // Token 188 is the lone byte 0x00; the lone continuation byte 0x80 is token 220 + ... find it by encoding.
        let euro = tokenizer.encodeOrdinary("€")   // E2 82 AC
        let bytes = try tokenizer.decodeBytes(euro)
        XCTAssertEqual(bytes, [0xE2, 0x82, 0xAC])
        let continuationByteID = try XCTUnwrap((0..<256).first { (try? tokenizer.decodeBytes([$0])) == [0x80] })
        XCTAssertEqual(try tokenizer.decodeBytes([continuationByteID]), [0x80])
        XCTAssertEqual(try tokenizer.decode([continuationByteID]), "\u{FFFD}")
        let leadByteID = try XCTUnwrap((0..<256).first { (try? tokenizer.decodeBytes([$0])) == [0xE2] })
        // A truncated three-byte character is one U+FFFD (maximal subpart), followed by "a".
        XCTAssertEqual(try tokenizer.decode([leadByteID] + tokenizer.encodeOrdinary("a")), "\u{FFFD}a")
    }

    func testIdOutOfRangeIsAnError() throws {
        let tokenizer = try SharedTokenizer.get()
        XCTAssertThrowsError(try tokenizer.decode([15496, 50257])) { error in
            XCTAssertEqual(error as? TokenizerError, .idOutOfRange(id: 50257, position: 1, vocabularySize: 50257))
        }
        XCTAssertThrowsError(try tokenizer.decodeBytes([-1]))
        XCTAssertEqual(try tokenizer.decode([]), "")
    }

    func testConcurrentCallsOnOneTokenizer() throws {
        let tokenizer = try SharedTokenizer.get()
        let texts = (0..<64).map { "text number \($0): the quick brown fox jumps over \($0 * 7919) lazy dogs" }
        let expected = texts.map { tokenizer.encodeOrdinary($0) }
        let results = ResultBox(count: texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count) { index in
            results.set(index, tokenizer.encodeOrdinary(texts[index]))
        }
        XCTAssertEqual(results.values, expected)
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[Int]]
    init(count: Int) { storage = Array(repeating: [], count: count) }
    func set(_ index: Int, _ value: [Int]) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    var values: [[Int]] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

/// Loading errors: which file, what is wrong, and a hint to rerun `fetch`.
final class TokenizerLoadingTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = try TestPaths.makeTempDir("tokenizer")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func loadError() -> PipelineError? {
        do {
            _ = try GPT2BPETokenizer(directory: directory)
            return nil
        } catch {
            return error as? PipelineError
        }
    }

    private func copyShared(_ name: String) throws -> URL {
        guard let assets = SharedTokenizer.vocabularyDirectory else {
            throw XCTSkip("needs ../shared/assets/gpt2 for a genuine \(name)")
        }
        let target = directory.appendingPathComponent(name)
        try FileManager.default.copyItem(at: assets.appendingPathComponent(name), to: target)
        return target
    }

    func testMissingEncoderJSON() throws {
        let error = try XCTUnwrap(loadError(), "an empty directory must not load")
        XCTAssertTrue(error.message.contains("encoder.json"), error.description)
        XCTAssertTrue(error.message.contains("missing"), error.description)
        XCTAssertEqual(error.location, directory.appendingPathComponent("encoder.json").path)
        XCTAssertTrue(error.hint?.contains("fetch") == true, error.description)
    }

    func testMissingVocabBPE() throws {
        _ = try copyShared("encoder.json")
        let error = try XCTUnwrap(loadError())
        XCTAssertTrue(error.message.contains("vocab.bpe"), error.description)
        XCTAssertEqual(error.location, directory.appendingPathComponent("vocab.bpe").path)
        XCTAssertTrue(error.hint?.contains("fetch") == true, error.description)
    }

    func testTruncatedEncoderJSON() throws {
        let encoder = try copyShared("encoder.json")
        _ = try copyShared("vocab.bpe")
        let data = try Data(contentsOf: encoder)
        try data.prefix(data.count / 2).write(to: encoder)
        let error = try XCTUnwrap(loadError())
        XCTAssertTrue(error.message.contains("encoder.json is damaged"), error.description)
        XCTAssertTrue(error.message.contains("JSON"), error.description)
        XCTAssertEqual(error.location, encoder.path)
        XCTAssertTrue(error.hint?.contains("fetch") == true)
    }

    func testEncoderJSONWithWrongShape() throws {
        let encoder = directory.appendingPathComponent("encoder.json")
        _ = try copyShared("vocab.bpe")
        try Data(#"{"a": 0, "b": "one"}"#.utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("expected a non-negative integer id"))
        try Data(#"{"a": 0, "b": 1}"#.utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("has 2 tokens, GPT-2's has 50257"))
        try Data(#"{"a": 0, "<|endoftext|>": 1}"#.utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("<|endoftext|> must have id 50256, not 1"))
        try Data(#"{"a": 0, "\u0100": 1"#.utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("ends too early"))
        try Data(#"{"\u4e00": 5}"#.utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("contains U+4E00, which is not one of GPT-2's 256 byte characters"))
        try Data("".utf8).write(to: encoder)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("empty"))
    }

    func testVocabBPEThatDoesNotMatchEncoderJSON() throws {
        _ = try copyShared("encoder.json")
        let merges = try copyShared("vocab.bpe")
        var lines = try String(contentsOf: merges, encoding: .utf8).components(separatedBy: "\n")
        lines.swapAt(10, 11)   // merges 9 and 10 (file lines 11 and 12) trade places
        try lines.joined(separator: "\n").write(to: merges, atomically: true, encoding: .utf8)
        let error = try XCTUnwrap(loadError())
        XCTAssertEqual(error.location, merges.path)
        XCTAssertTrue(error.message.contains("vocab.bpe is damaged: line 11"), error.description)
        XCTAssertTrue(error.message.contains("do not belong together"), error.description)
    }

    func testVocabBPEWithMissingLines() throws {
        _ = try copyShared("encoder.json")
        let merges = try copyShared("vocab.bpe")
        let lines = try String(contentsOf: merges, encoding: .utf8).components(separatedBy: "\n")
        try lines.prefix(1000).joined(separator: "\n").write(to: merges, atomically: true, encoding: .utf8)
        let error = try XCTUnwrap(loadError())
        XCTAssertTrue(error.message.contains("it has 999 merges, GPT-2's has 50000"), error.description)
    }

    func testDirectoryInsteadOfFile() throws {
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("encoder.json"),
                                                withIntermediateDirectories: false)
        XCTAssertTrue(try XCTUnwrap(loadError()).message.contains("found a directory"))
    }
}

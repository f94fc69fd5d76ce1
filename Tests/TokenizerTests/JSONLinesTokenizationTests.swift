import ArtifactKit
import Foundation
import GPT2Tokenizer
import TestSupport
import XCTest

final class JSONLinesTokenizationTests: XCTestCase {
    /// Every test tokenizes with the GPT-2 vocabulary: without the shared assets they skip here
    /// (a skip thrown inside an expected-error closure would count as the error).
    override func setUpWithError() throws {
        guard SharedTokenizer.vocabularyDirectory != nil else { throw XCTSkip("needs ../shared/assets/gpt2 (or $LLMFT_ASSETS/gpt2)") }
    }

    private func tokenize(_ input: String, _ handling: SpecialTokenHandling = .disallow) throws -> String {
        let tokenizer = try SharedTokenizer.get()
        let output = try JSONLinesTokenization.tokenize(Data(input.utf8), with: tokenizer, specialTokens: handling, threads: 2)
        return String(decoding: output, as: UTF8.self)
    }

    func testOneArrayPerLine() throws {
        XCTAssertEqual(try tokenize("\"Hello, world\"\n\"\"\r\n\"Akwirw ier\""), "[15496,11,995]\n[]\n[33901,86,343,86,220,959]\n")
        XCTAssertEqual(try tokenize(""), "")
        XCTAssertEqual(try tokenize(#""tab\there\nnewline \u00e9""# + "\n"),
                       "[" + (try SharedTokenizer.get()).encodeOrdinary("tab\there\nnewline é").map(String.init).joined(separator: ",") + "]\n")
    }

    func testSpecialTokenHandling() throws {
        let line = "\"a<|endoftext|>\"\n"
        XCTAssertEqual(try tokenize(line, .allow), "[64,50256]\n")
        XCTAssertEqual(try tokenize(line, .ordinary), "[64,27,91,437,1659,5239,91,29]\n")
        XCTAssertThrowsError(try tokenize("\"fine\"\n" + line)) { error in
            let error = error as? PipelineError
            XCTAssertEqual(error?.message.hasPrefix("line 2 contains the special token <|endoftext|>"), true, "\(String(describing: error))")
            XCTAssertEqual(error?.hint?.contains("--allow-special"), true)
        }
    }

    func testMalformedLinesNameTheLine() throws {
        for (input, line) in [("\"ok\"\nnot json\n", 2), ("\"ok\"\n\n\"ok\"", 2), ("[1, 2]", 1), ("\"ok\"\n\"ok\"\n\"unterminated", 3), ("42", 1)] {
            XCTAssertThrowsError(try tokenize(input), input) { error in
                let message = (error as? PipelineError)?.message ?? "\(error)"
                XCTAssertTrue(message.hasPrefix("line \(line) "), "\(input.debugDescription): \(message)")
                XCTAssertEqual((error as? PipelineError)?.location, "stdin")
            }
        }
    }

    /// The real `prepare tokenize` executable: stdout, stderr and exit status.
    func testPrepareTokenizeCommand() throws {
        guard let vocab = SharedTokenizer.vocabularyDirectory else { throw XCTSkip("needs ../shared/assets/gpt2") }
        func run(_ input: String, _ arguments: [String]) throws -> ToolRun {
            try runTool("prepare", ["tokenize", "--vocab", vocab.path] + arguments, stdin: Data(input.utf8))
        }
        let good = try run("\"Hello, world\"\n\"x <|endoftext|>\"\n", ["--allow-special"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertEqual(good.stdout, "[15496,11,995]\n[87,220,50256]\n")
        let bad = try run("\"Hello\"\n{\"text\": 1}\n", [])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stdout, "", "no partial output")
        XCTAssertTrue(bad.stderr.contains("line 2"), bad.stderr)
    }
}

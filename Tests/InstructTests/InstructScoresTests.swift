import Foundation
import TrainingKit
import Instruct
import XCTest

/// Response extraction, overlap scores and the book-shaped response file.
final class InstructScoresTests: XCTestCase {
    func testResponseIsTheTextAfterThePromptWithoutTheMarker() {
        let prompt = formatPrompt(InstructionEntry(instruction: "Name a color.", output: "Red."))
        let generated = prompt + "\n\n### Response:\nThe color is blue.\n"
        XCTAssertEqual(extractResponse(generatedText: generated, promptText: prompt, marker: "### Response:"), "The color is blue.")
        // Nothing generated at all: empty, not the prompt.
        XCTAssertEqual(extractResponse(generatedText: prompt, promptText: prompt, marker: "### Response:"), "")
        // The marker is removed wherever it occurs, as str.replace does.
        XCTAssertEqual(extractResponse(generatedText: prompt + "\n### Response: a ### Response: b", promptText: prompt, marker: "### Response:"),
                       "a  b")
        // Phi-3 marker.
        let phi = formatPrompt(InstructionEntry(instruction: "Hi", output: "x"), style: .phi3)
        XCTAssertEqual(extractResponse(generatedText: phi + "\n<|assistant|>:\nHello!", promptText: phi, marker: PromptStyle.phi3.responseMarker),
                       "Hello!")
    }

    func testPromptIsDroppedByCodePointsLikePythonLen() {
        // "e" + combining acute accent is one Character but two code points (Python len 2).
        let prompt = "Cafe\u{301}"
        let generated = prompt + " ok"
        XCTAssertEqual(prompt.count, 4)
        XCTAssertEqual(extractResponse(generatedText: generated, promptText: prompt, marker: "### Response:"), "ok")
    }

    func testWordsAreLowercaseAlphanumericRuns() {
        XCTAssertEqual(OverlapScore.words("The cat's HAT, 42 times!"), ["the", "cat", "s", "hat", "42", "times"])
        XCTAssertEqual(OverlapScore.words("  ...  "), [])
    }

    func testTokenF1OnKnownStrings() {
        // response: the cat sat on the mat (6), reference: the cat is on the mat (6);
        // common multiset: the x2, cat, on, mat = 5 -> P = R = 5/6 -> F1 = 5/6.
        XCTAssertEqual(OverlapScore.tokenF1(response: "The cat sat on the mat.", reference: "the cat is on the mat"), 5.0 / 6.0, accuracy: 1e-12)
        // Repeated words count at most as often as in the reference: "the the the" vs "the cat":
        // common 1, P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4.
        XCTAssertEqual(OverlapScore.tokenF1(response: "the the the", reference: "the cat"), 0.4, accuracy: 1e-12)
        XCTAssertEqual(OverlapScore.tokenF1(response: "", reference: ""), 1)
        XCTAssertEqual(OverlapScore.tokenF1(response: "x", reference: ""), 0)
        XCTAssertEqual(OverlapScore.tokenF1(response: "a b", reference: "c d"), 0)
    }

    func testRougeLOnKnownStrings() {
        // LCS of [the cat sat on the mat] and [the cat is on the mat] = the cat on the mat = 5.
        XCTAssertEqual(OverlapScore.lcsLength(OverlapScore.words("the cat sat on the mat"), OverlapScore.words("the cat is on the mat")), 5)
        XCTAssertEqual(OverlapScore.rougeL(response: "the cat sat on the mat", reference: "the cat is on the mat"), 5.0 / 6.0, accuracy: 1e-12)
        // Order matters for ROUGE-L, not for F1: "mat the on" vs "the on mat" -> LCS 2 (the on), P = R = 2/3.
        XCTAssertEqual(OverlapScore.rougeL(response: "mat the on", reference: "the on mat"), 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(OverlapScore.tokenF1(response: "mat the on", reference: "the on mat"), 1, accuracy: 1e-12)
        // Different lengths: response "a b c d" vs reference "a c": LCS 2, P = 1/2, R = 1, F1 = 2/3.
        XCTAssertEqual(OverlapScore.rougeL(response: "a b c d", reference: "a c"), 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(OverlapScore.rougeL(response: "", reference: "a"), 0)
    }

    func testResponsesFileIsWhatPythonJSONDumpWrites() {
        // Expected bytes from Python: json.dumps([...], indent=4) (ensure_ascii on, as the book's json.dump).
        let entries = [InstructionRecord.alpaca(InstructionEntry(instruction: "Say \u{e9}", input: "", output: "x\n\"y\"\t"))]
        let got = String(decoding: InstructEvaluateStage.responsesJSON(entries, ["\u{1F600} ok\u{7F}"]), as: UTF8.self)
        let want = "[\n    {\n        \"instruction\": \"Say \\u00e9\",\n        \"input\": \"\",\n        \"output\": \"x\\n\\\"y\\\"\\t\",\n        \"model_response\": \"\\ud83d\\ude00 ok\\u007f\"\n    }\n]"
        XCTAssertEqual(got, want)
        XCTAssertEqual(String(decoding: InstructEvaluateStage.responsesJSON([], []), as: UTF8.self), "[]")
    }

    func testResponsesFileOfPromptCompletionRecords() {
        let got = String(decoding: InstructEvaluateStage.responsesJSON([.promptCompletion(prompt: "p", completion: "c")], ["r"]), as: UTF8.self)
        XCTAssertEqual(got, "[\n    {\n        \"prompt\": \"p\",\n        \"completion\": \"c\",\n        \"model_response\": \"r\"\n    }\n]")
    }
}

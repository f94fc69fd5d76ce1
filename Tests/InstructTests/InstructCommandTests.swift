import Foundation
import TestSupport
import Instruct
import XCTest

/// The `prepare instruct` executable: exit status, messages, and no output on bad input.
final class InstructCommandTests: XCTestCase {
    private func run(_ arguments: [String], in dir: URL) throws -> ToolRun {
        try runTool("prepare", ["instruct"] + arguments, cwd: dir)
    }

    func testBadEntryExitsNonZeroAndWritesNothing() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(#"[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": "", "output": ["d"]}]"#.utf8)
            .write(to: dir.appendingPathComponent("bad.json"))
        let result = try run(["--input", "bad.json", "--vocab", assets.appendingPathComponent("gpt2").path, "--out", "out"], in: dir)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("bad.json"), result.stderr)
        XCTAssertTrue(result.stderr.contains("entry 1, key \"output\": expected a string, found a list"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    func testRealFileWithPhi3() throws {
        let input = try instructionDataURL()
        let assets = try XCTUnwrap(TestPaths.sharedAssets)
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try run(["--input", input.path, "--vocab", assets.appendingPathComponent("gpt2").path,
                              "--out", "data/instruct", "--style", "phi3"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("prepared data/instruct (phi3 prompts): 1100 entries"), result.stdout)
        XCTAssertTrue(result.stdout.contains("train: 935 rows, 36410 tokens"), result.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("data/instruct/manifest.json").path))
    }

    func testUnknownStyleIsAUsageError() throws {
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try run(["--style", "markdown"], in: dir)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("alpaca"), result.stderr)
    }

    func testChatFilesAsSplitsWithTheChatMLTemplate() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let chat = #"{"conversation": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#
        try Data([chat, chat, chat].joined(separator: "\n").utf8).write(to: dir.appendingPathComponent("train.jsonl"))
        try Data(chat.utf8).write(to: dir.appendingPathComponent("dev.jsonl"))
        let vocab = assets.appendingPathComponent("gpt2").path
        let result = try run(["--train", "train.jsonl", "--validation", "dev.jsonl", "--field", "messages=conversation",
                              "--style", "chatml", "--vocab", vocab, "--out", "out"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("prepared out (chatml prompts): 4 entries of shape chat"), result.stdout)
        XCTAssertTrue(result.stdout.contains("train: 3 rows"), result.stdout)
        XCTAssertTrue(result.stdout.contains("test: 0 rows"), result.stdout)

        for (arguments, fragment) in [(["--train", "train.jsonl"], "--train needs --validation"),
                                      (["--validation", "dev.jsonl"], "--validation and --test need --train"),
                                      (["--train", "train.jsonl", "--validation", "dev.jsonl", "--train-frac", "0.5"], "--train takes the splits from files"),
                                      (["--input", "train.jsonl", "--shape", "alpaca"], "line 1 has no \"instruction\" key (it has: conversation)"),
                                      (["--input", "train.jsonl", "--format", "json"], "not valid JSON")] {
            let bad = try run(arguments + ["--vocab", vocab, "--out", "bad"], in: dir)
            XCTAssertEqual(bad.status, 1, "\(arguments)")
            XCTAssertTrue(bad.stderr.contains(fragment), "\(arguments): \(bad.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bad").path))
        }
    }
}

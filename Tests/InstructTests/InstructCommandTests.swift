import Foundation
import TestSupport
import Instruct
import XCTest

/// The `prepare instruct` executable: exit status, messages, and no output on bad input.
final class InstructCommandTests: XCTestCase {
    private func run(_ arguments: [String], in dir: URL) throws -> (status: Int32, out: String, err: String) {
        let exe = TestPaths.executable("prepare")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else {
            throw XCTSkip("\(exe.path) not built (run `swift build` first)")
        }
        let process = Process()
        process.executableURL = exe
        process.arguments = ["instruct"] + arguments
        process.currentDirectoryURL = dir
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    func testBadEntryExitsNonZeroAndWritesNothing() throws {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("shared assets not present: the GPT-2 vocabulary is needed") }
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(#"[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": "", "output": ["d"]}]"#.utf8)
            .write(to: dir.appendingPathComponent("bad.json"))
        let result = try run(["--input", "bad.json", "--vocab", assets.appendingPathComponent("gpt2").path, "--out", "out"], in: dir)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.contains("bad.json"), result.err)
        XCTAssertTrue(result.err.contains("entry 1, key \"output\": expected a string, found a list"), result.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    func testRealFileWithPhi3() throws {
        let input = try instructionDataURL()
        let assets = try XCTUnwrap(TestPaths.sharedAssets)
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try run(["--input", input.path, "--vocab", assets.appendingPathComponent("gpt2").path,
                              "--out", "data/instruct", "--style", "phi3"], in: dir)
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("prepared data/instruct (phi3 prompts): 1100 entries"), result.out)
        XCTAssertTrue(result.out.contains("train: 935 rows, 36410 tokens"), result.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("data/instruct/manifest.json").path))
    }

    func testUnknownStyleIsAUsageError() throws {
        let dir = try TestPaths.makeTempDir("instruct-cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try run(["--style", "chatml"], in: dir)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.err.contains("alpaca"), result.err)
    }
}

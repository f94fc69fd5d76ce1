import ArtifactKit
import Foundation
import TestSupport
import TrainingKit
import Instruct
import XCTest

/// The stand-in Ollama server of Tests/Fixtures/judge/stub_judge.py, on 127.0.0.1.
final class JudgeStub {
    let process = Process()
    let port: Int
    let log: URL

    init(mode: String) throws {
        let dir = try TestPaths.makeTempDir("judge")
        log = dir.appendingPathComponent("requests.jsonl")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestPaths.fixtures.appendingPathComponent("judge/stub_judge.py").path, mode, log.path]
        let out = Pipe()
        process.standardOutput = out
        do { try process.run() } catch { throw XCTSkip("python3 is needed for the judge stub: \(error)") }
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let text = String(data: line, encoding: .utf8), let p = Int(text.replacingOccurrences(of: "PORT", with: "")
            .trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw XCTSkip("the judge stub did not start")
        }
        port = p
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func requests() throws -> [JSONValue] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    deinit { process.terminate(); process.waitUntilExit() }
}

/// A port on 127.0.0.1 with nothing listening: bound, then closed.
func unusedLocalPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

final class InstructJudgeTests: XCTestCase {
    let entry = InstructionEntry(instruction: "Rewrite the sentence using a simile.", input: "The car is very fast.",
                                 output: "The car is as fast as lightning.")

    func testPromptIsTheBooks() {
        let p = Judge.prompt(entry: entry, modelResponse: "The car is as fast as a bullet.")
        XCTAssertEqual(p, "Given the input `Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nRewrite the sentence using a simile.\n\n### Input:\nThe car is very fast.` and correct output `The car is as fast as lightning.`, score the model response `The car is as fast as a bullet.` on a scale from 0 to 100, where 100 is the best score. Respond with the integer number only.")
    }

    func testScoreParsingIsStrictLikeInt() {
        XCTAssertEqual(Judge.parseScore("85"), 85)
        XCTAssertEqual(Judge.parseScore(" 0\n"), 0)
        XCTAssertEqual(Judge.parseScore("100"), 100)
        XCTAssertNil(Judge.parseScore("101"))
        XCTAssertNil(Judge.parseScore("Score: 85"))
        XCTAssertNil(Judge.parseScore("85.5"))
        XCTAssertNil(Judge.parseScore(""))
    }

    func testStubGivesScoresAndReceivesTheBooksRequest() throws {
        let stub = try JudgeStub(mode: "good")
        let response = "The car is as fast as a bullet."
        let reply = try Judge.ask(Judge.prompt(entry: entry, modelResponse: response), options: JudgeOptions(url: stub.url + "/", model: "llama3"))
        XCTAssertEqual(Judge.parseScore(reply), response.count % 101)
        let sent = try stub.requests()
        XCTAssertEqual(sent.count, 1)
        XCTAssertEqual(sent[0]["path"], "/api/chat")
        XCTAssertEqual(sent[0]["content_type"], "application/json")
        let body = sent[0]["body"]!
        XCTAssertEqual(body["model"], "llama3")
        XCTAssertEqual(body["stream"], .bool(false))
        XCTAssertEqual(body["options"], .object(["seed": 123, "temperature": 0, "num_ctx": 2048]))
        XCTAssertEqual(body["messages"], .array([.object(["role": "user", "content": .string(Judge.prompt(entry: entry, modelResponse: response))])]))
    }

    func testGarbageReplyIsNotAScore() throws {
        let stub = try JudgeStub(mode: "garbage")
        let reply = try Judge.ask("x", options: JudgeOptions(url: stub.url))
        XCTAssertEqual(reply, "That response is quite good!")
        XCTAssertNil(Judge.parseScore(reply))
    }

    func testHTTPErrorAndUnreachableEndpointAreClear() throws {
        let stub = try JudgeStub(mode: "http500")
        XCTAssertThrowsError(try Judge.ask("x", options: JudgeOptions(url: stub.url))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("HTTP 500") && m.contains("model not loaded"), m)
        }
        let port = unusedLocalPort()
        var o = JudgeOptions(url: "http://127.0.0.1:\(port)")
        o.connectTimeoutSeconds = 2
        let start = Date()
        XCTAssertThrowsError(try Judge.ask("x", options: o)) { e in
            XCTAssertTrue(e is JudgeUnavailable)
            XCTAssertTrue("\(e)".contains("cannot reach http://127.0.0.1:\(port)/api/chat"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }
}

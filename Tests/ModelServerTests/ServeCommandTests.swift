import ArtifactKit
import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A `serve` process, started on a free loopback port (`--port 0`, the port read off its first
/// line), stopped with a signal.
final class ServeProcess {
    let process = Process()
    let port: Int
    private let output = Pipe()
    private var lines = ""

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = TestPaths.executable("serve")
        process.arguments = ["--port", "0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port = 0
        let deadline = Date().addingTimeInterval(60)
        while port == 0, Date() < deadline, process.isRunning {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            lines += String(decoding: data, as: UTF8.self)
            if let range = lines.range(of: #"http://127\.0\.0\.1:(\d+)/"#, options: .regularExpression) {
                port = Int(lines[range].dropFirst("http://127.0.0.1:".count).dropLast()) ?? 0
            }
        }
        guard port > 0 else {
            process.terminate()
            throw PipelineError("serve did not print its port: \(lines)")
        }
        self.port = port
    }

    /// The first line, e.g. "serving classifier ... on http://127.0.0.1:PORT/ (...)".
    var banner: String { lines }

    /// Sends `signal` and waits for the exit; returns the status and what it printed after the banner.
    func stop(_ signal: Int32 = SIGINT) -> (Int32, String) {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        let rest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, rest)
    }

    deinit { if process.isRunning { process.terminate() } }
}

final class ServeCommandTests: XCTestCase {
    func testCtrlCLetsAStreamInFlightFinishThenExits() throws {
        let m = try ServeFixture.models()
        let serve = try ServeProcess(["--model", m.instruct.path, "--vocab", m.vocab.path, "--context", "128", "--test-step-delay", "0.02"])
        XCTAssertTrue(serve.banner.contains("serving instruct instruct on http://127.0.0.1:\(serve.port)/"), serve.banner)
        let fd = try RawHTTP.connect(port: serve.port)
        defer { close(fd) }
        let body = Data(#"{"prompt": "Repeat", "max_tokens": 100, "stream": true}"#.utf8)
        RawHTTP.send(fd, RawHTTP.requestBytes("POST", "/v1/completions", body: body, headers: [:]))
        var received = RawHTTP.read(fd) { String(decoding: $0, as: UTF8.self).contains("data: ") }
        XCTAssertFalse(String(decoding: received, as: UTF8.self).contains("[DONE]"), "the stream is still running (100 steps of 20 ms)")
        let (status, printed) = serve.stop(SIGINT)
        received += RawHTTP.read(fd)
        let reply = try RawHTTP.parse(received)
        XCTAssertEqual(reply.events.last, "[DONE]", "the stream in flight was finished before the exit")
        let finish = try JSONDecoder().decode(JSONValue.self, from: Data(reply.events.dropLast().last!.utf8))
        XCTAssertNotNil(finish["choices"]?[0]?["finish_reason"]?.stringValue, "the finish chunk came before [DONE]")
        XCTAssertEqual(status, 0)
        XCTAssertTrue(printed.contains("stopped: requests in flight answered"), printed)
    }

    func testSIGTERMStopsAnIdleServerAndBadFoldersAreRefused() throws {
        let m = try ServeFixture.models()
        let serve = try ServeProcess(["--model", m.classifier.path, "--vocab", m.vocab.path])
        XCTAssertEqual(try RawHTTP.request(port: serve.port, method: "GET", path: "/health").status, 200)
        XCTAssertEqual(serve.stop(SIGTERM).0, 0)

        let notAModel = try runTool("serve", ["--model", m.dir.appendingPathComponent("prepared").path, "--vocab", m.vocab.path])
        XCTAssertEqual(notAModel.status, 1)
        XCTAssertTrue(notAModel.stderr.contains("not a trained model"), notAModel.stderr)
        let missing = try runTool("serve", ["--model", m.dir.appendingPathComponent("nothing").path, "--vocab", m.vocab.path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no manifest.json"), missing.stderr)
    }
}

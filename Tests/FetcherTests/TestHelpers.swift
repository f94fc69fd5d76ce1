import ArtifactKit
@testable import Fetcher
import Foundation
import TestSupport
import XCTest

/// The Python HTTP server in Tests/Fixtures/fetch/test_server.py, on 127.0.0.1 and a free port
/// it picks itself; stopped by `stop()` (call it in tearDown).
final class TestServer {
    let process = Process()
    let port: Int
    let root: URL
    let log: URL

    init(root: URL) throws {
        self.root = root
        log = root.deletingLastPathComponent().appendingPathComponent("requests-\(UUID().uuidString.prefix(6)).jsonl")
        let script = TestPaths.fixtures.appendingPathComponent("fetch/test_server.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, root.path, log.path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        // The server prints "PORT <n>" once it listens; EOF before that means it died.
        var text = ""
        while !text.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first, line.hasPrefix("PORT "), let p = Int(line.dropFirst(5)) else {
            process.terminate()
            throw XCTSkip("could not start the python3 test server (output: \(text))")
        }
        port = p
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    /// The requests the server saw, in order.
    func requests() -> [[String: Any]] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// Collects what a Fetcher reports, for assertions.
final class Transcript {
    var lines: [String] = []
    var warnings: [String] = []
}

func makeSpec(_ name: String, file: String, urls: [String], content: Data, extract: ExtractSpec? = nil) -> SourceSpec {
    SourceSpec(name: name, file: file, urls: urls, sha256: FileHash.sha256(of: content), size: content.count, extract: extract)
}

/// Deterministic pseudo-random bytes (so a failure can be reproduced).
func testBytes(_ count: Int, seed: UInt64 = 42) -> Data {
    var state = seed
    var out = Data(capacity: count)
    for _ in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        out.append(UInt8(truncatingIfNeeded: state >> 33))
    }
    return out
}

/// Short timeouts and backoff so failure paths stay fast.
func quickOptions(out: URL, mirror: URL? = nil, retries: Int = 2, transcript: Transcript) -> FetchOptions {
    FetchOptions(outDir: out, mirror: mirror, retries: retries, backoff: 0.05, maxBackoff: 0.2,
                 connectTimeout: 2, stallTimeout: 1, progress: false,
                 report: { transcript.lines.append($0) }, warn: { transcript.warnings.append($0) })
}

/// Runs python3 and returns its standard output (an independent reference for zip contents).
func python(_ code: String, _ args: [String] = []) throws -> Data {
    let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", code] + args)
    guard run.status == 0 else { throw PipelineError("python3 failed: \(run.stderr)", location: code) }
    return run.stdoutData
}

/// Every file under `dir`, hidden ones included (to prove nothing was left behind).
func allFiles(_ dir: URL) -> [String] {
    guard let en = FileManager.default.enumerator(atPath: dir.path) else { return [] }
    var out: [String] = []
    for case let rel as String in en {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent(rel).path, isDirectory: &isDir), !isDir.boolValue {
            out.append(rel)
        }
    }
    return out.sorted()
}

func fetchFailure(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> FetchFailure? {
    do {
        try body()
        XCTFail("expected the fetch to fail", file: file, line: line)
        return nil
    } catch let f as FetchFailure {
        return f
    } catch {
        XCTFail("expected FetchFailure, got \(error)", file: file, line: line)
        return nil
    }
}

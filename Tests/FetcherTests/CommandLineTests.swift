import ArtifactKit
import Foundation
import TestSupport
import XCTest

/// The `fetch` executable itself: exit codes, what it prints, what it leaves on disk.
final class CommandLineTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try TestPaths.makeTempDir("fetch-cli")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    /// `fetch` run in `tmp`, never with the caller's `LLMFT_MIRROR` unless `environment` sets it.
    func runFetch(_ args: [String], environment: [String: String] = [:]) throws -> ToolRun {
        var env: [String: String?] = ["LLMFT_MIRROR": nil]
        for (key, value) in environment { env[key] = value }
        return try runTool("fetch", args, cwd: tmp, environment: env)
    }

    /// The real pipeline.yaml, offline, from the shared assets as a mirror (as on our machines).
    func testPipelineSourcesFromMirrorThenSkipped() throws {
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("../shared/assets is absent (set LLMFT_ASSETS): no offline copies to fetch from")
        }
        let config = TestPaths.repoRoot.appendingPathComponent("pipeline.yaml").path
        let first = try runFetch(["--config", config, "--out", "data/raw", "--no-progress"], environment: ["LLMFT_MIRROR": assets.path])
        XCTAssertEqual(first.status, 0, first.stderr)
        let lines = first.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("mirror      sms-spam-collection.zip") }, first.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("mirror      gpt2/encoder.json") }, first.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("mirror      gpt2/vocab.bpe") }, first.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("extracted   SMSSpamCollection.tsv") }, first.stdout)
        let raw = tmp.appendingPathComponent("data/raw")
        XCTAssertEqual(allFiles(raw), ["SMSSpamCollection.tsv", "gpt2/encoder.json", "gpt2/vocab.bpe", "manifest.json", "sms-spam-collection.zip"])
        let manifest = try Manifest.read(from: raw.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.format, "raw-sources")
        XCTAssertEqual(manifest.outputs.first { $0.path == "gpt2/encoder.json" }?.sha256,
                       "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783")

        let second = try runFetch(["--config", config, "--out", "data/raw", "--mirror", assets.path])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stdout.split(separator: "\n").filter { $0.hasPrefix("skipped") }.count, 4, second.stdout)

        let only = try runFetch(["--config", config, "--out", "data/raw", "--only", "nope"])
        XCTAssertEqual(only.status, 1)
        XCTAssertTrue(only.stderr.contains("--only nope: no such source"), only.stderr)
    }

    /// weights.yaml with `--only SIZE`: just that file, and an unpinned size says so.
    func testWeightsFileOnlyOneSize() throws {
        let config = TestPaths.repoRoot.appendingPathComponent("weights.yaml").path
        let mirror = tmp.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("gpt2-medium"), withIntermediateDirectories: true)
        let fake = Data("not really gpt2-medium".utf8)
        try fake.write(to: mirror.appendingPathComponent("gpt2-medium/model.safetensors"))
        let run = try runFetch(["--config", config, "--out", "data/weights", "--only", "gpt2-medium", "--mirror", mirror.path, "--no-progress"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("mirror      gpt2-medium/model.safetensors (\(fake.count) bytes, UNPINNED"), run.stdout)
        XCTAssertTrue(run.stderr.contains("source `gpt2-medium` is unpinned"), run.stderr)
        XCTAssertEqual(allFiles(tmp.appendingPathComponent("data/weights")), ["gpt2-medium/model.safetensors", "manifest.json"])

        let unknown = try runFetch(["--config", config, "--out", "data/weights", "--only", "gpt2-mega"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("--only gpt2-mega: no such source (sources: gpt2-small, gpt2-medium, gpt2-large, gpt2-xl)"),
                      unknown.stderr)
    }

    /// A `fetch` killed mid-download leaves only its hidden partial; the next run resumes it.
    func testKilledDownloadIsResumedByTheNextRun() throws {
        let exe = try TestPaths.builtExecutable("fetch")
        let www = tmp.appendingPathComponent("www")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        let content = testBytes(100_000, seed: 7)
        try content.write(to: www.appendingPathComponent("f.bin"))
        let server = try TestServer(root: www)
        defer { server.stop() }
        // The first request sends 20000 bytes, then nothing for 60 s: time enough to kill fetch.
        let yaml = """
            params:
              fetch:
                sources:
                  - name: blob
                    file: blob/f.bin
                    urls: [\(server.url("stall/1/20000/60/f.bin"))]
                    sha256: \(FileHash.sha256(of: content))
                    size: \(content.count)
            """
        try yaml.write(to: tmp.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)

        let p = Process()
        p.executableURL = exe
        p.arguments = ["--config", "p.yaml", "--out", "raw"]
        p.currentDirectoryURL = tmp
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let partial = tmp.appendingPathComponent("raw/blob/.f.bin.part")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let size = (try? FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)?.intValue ?? 0
            if size == 20_000 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.terminate()
        p.waitUntilExit()
        XCTAssertEqual(allFiles(tmp.appendingPathComponent("raw")), ["blob/.f.bin.part"], "only the hidden partial is left")

        let run = try runFetch(["--config", "p.yaml", "--out", "raw"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("downloaded  blob/f.bin (100000 bytes, sha256 verified)"), run.stdout)
        XCTAssertTrue(run.stdout.contains("(resumed)"), run.stdout)
        XCTAssertEqual(server.requests().map { $0["range"] as? String }, [nil, "bytes=20000-"])
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("raw/blob/f.bin")), content)
        XCTAssertEqual(allFiles(tmp.appendingPathComponent("raw")), ["blob/f.bin", "manifest.json"])
    }

    func testChecksumMismatchExitsNonZeroWithClearMessage() throws {
        let payload = tmp.appendingPathComponent("payload.bin")
        try Data("hello\n".utf8).write(to: payload)
        let yaml = """
            params:
              fetch:
                sources:
                  - name: hello
                    file: hello.txt
                    urls: [\(payload.absoluteString)]
                    sha256: \(String(repeating: "ab", count: 32))
                    size: 6
            """
        try yaml.write(to: tmp.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let run = try runFetch(["--config", "p.yaml", "--out", "raw", "--retries", "0"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("source `hello`: could not fetch `hello.txt` from any URL"), run.stderr)
        XCTAssertTrue(run.stderr.contains("checksum mismatch"), run.stderr)
        XCTAssertEqual(allFiles(tmp.appendingPathComponent("raw")), [])
    }

    func testUnknownKeyExitsNonZeroNamingKeyAndFile() throws {
        try "params:\n  fetch:\n    sources:\n      - name: x\n        colour: red\n".write(
            to: tmp.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let run = try runFetch(["--config", "p.yaml", "--out", "raw"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("p.yaml"), run.stderr)
        XCTAssertTrue(run.stderr.contains("unknown key `colour`"), run.stderr)
    }
}

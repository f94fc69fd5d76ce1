import ArtifactKit
@testable import Fetcher
import Foundation
import TestSupport
import XCTest

/// The download path against a real HTTP server on 127.0.0.1 (Tests/Fixtures/fetch/test_server.py).
final class DownloadTests: XCTestCase {
    var tmp: URL!
    var root: URL!
    var out: URL!
    var server: TestServer!
    let content = testBytes(100_000)
    var transcript = Transcript()

    override func setUpWithError() throws {
        tmp = try TestPaths.makeTempDir("fetch")
        root = tmp.appendingPathComponent("www")
        out = tmp.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try content.write(to: root.appendingPathComponent("f.bin"))
        try content.write(to: root.appendingPathComponent("sub/f.bin"))
        server = try TestServer(root: root)
        transcript = Transcript()
    }

    override func tearDownWithError() throws {
        server?.stop()
        try? FileManager.default.removeItem(at: tmp)
    }

    func fetcher(retries: Int = 2, mirror: URL? = nil) -> Fetcher {
        Fetcher(options: quickOptions(out: out, mirror: mirror, retries: retries, transcript: transcript))
    }

    func spec(_ urls: [String], file: String = "data/f.bin", name: String = "blob") -> SourceSpec {
        makeSpec(name, file: file, urls: urls, content: content)
    }

    func assertOnlyManifestAnd(_ files: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(allFiles(out), (files + [Manifest.fileName]).sorted(), file: file, line: line)
    }

    func testDownloadsVerifiesAndWritesManifest() throws {
        let results = try fetcher().fetch([spec([server.url("f.bin")])])
        XCTAssertEqual(results.map(\.action), [.downloaded])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
        assertOnlyManifestAnd(["data/f.bin"])

        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.format, "raw-sources")
        XCTAssertEqual(manifest.formatVersion, 1)
        XCTAssertEqual(manifest.tool, "fetch")
        XCTAssertEqual(manifest.outputs, [FileRecord(path: "data/f.bin", sha256: FileHash.sha256(of: content), size: content.count)])
        XCTAssertEqual(manifest.inputs.map(\.path), [server.url("f.bin")])
        XCTAssertEqual(manifest.stats["provenance"]?["data/f.bin"]?["from"]?.stringValue, server.url("f.bin"))
        XCTAssertEqual(manifest.stats["provenance"]?["data/f.bin"]?["action"]?.stringValue, "downloaded")
        XCTAssertTrue(transcript.lines[0].hasPrefix("downloaded  data/f.bin"), transcript.lines[0])
    }

    func testPrimaryFailingWith500UsesBackupAfterRetries() throws {
        let primary = server.url("status/99/500/f.bin")
        let results = try fetcher(retries: 2).fetch([spec([primary, server.url("f.bin")])])
        XCTAssertEqual(results.first?.from, server.url("f.bin"))
        // 500 is transient: the first attempt and 2 retries, then the backup.
        let paths = server.requests().map { $0["path"] as? String }
        XCTAssertEqual(paths, ["/status/99/500/f.bin", "/status/99/500/f.bin", "/status/99/500/f.bin", "/f.bin"])
        XCTAssertTrue(transcript.warnings.contains { $0.contains("HTTP 500") && $0.contains("retry 1 of 2") }, "\(transcript.warnings)")
    }

    func testTransient503ThenSuccessOnSameURL() throws {
        let url = server.url("status/1/503/f.bin")
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.from, url)
        XCTAssertEqual(server.requests().compactMap { $0["status"] as? Int }, [503, 200])
    }

    func testTooManyRequestsAndRequestTimeoutAreRetriedButForbiddenIsNot() throws {
        _ = try fetcher().fetch([spec([server.url("status/1/429/f.bin")], file: "a.bin"),
                                 spec([server.url("status/1/408/f.bin")], file: "b.bin", name: "other")])
        XCTAssertEqual(server.requests().compactMap { $0["status"] as? Int }, [429, 200, 408, 200])
        let forbidden = server.url("status/9/403/f.bin")
        let message = fetchFailure { try fetcher().fetch([spec([forbidden], file: "c.bin")]) }?.description ?? ""
        XCTAssertTrue(message.contains("403"), message)
        XCTAssertEqual(server.requests().filter { $0["path"] as? String == "/status/9/403/f.bin" }.count, 1)
    }

    func testNotFoundIsNotRetried() throws {
        let primary = server.url("missing.bin")
        _ = try fetcher(retries: 3).fetch([spec([primary, server.url("f.bin")])])
        XCTAssertEqual(server.requests().map { $0["path"] as? String }, ["/missing.bin", "/f.bin"])
    }

    func testDroppedConnectionIsResumedWithRangeRequest() throws {
        let url = server.url("drop/1/30000/f.bin")
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.resumed, true)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
        let reqs = server.requests()
        XCTAssertEqual(reqs.count, 2)
        XCTAssertEqual(reqs[1]["range"] as? String, "bytes=30000-")
        XCTAssertEqual(reqs[1]["status"] as? Int, 206)
        assertOnlyManifestAnd(["data/f.bin"])
    }

    func testCleanCloseWithoutContentLengthIsTreatedAsTruncatedAndResumed() throws {
        let url = server.url("nolength/drop/1/40000/f.bin")
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.resumed, true)
        XCTAssertEqual(server.requests().last?["range"] as? String, "bytes=40000-")
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testStalledTransferIsAbandonedAfterStallTimeoutAndRetried() throws {
        // Headers, then 30 s of silence. libcurl averages speed over a window of about 5 s, so a
        // stall right after the headers shows the stall timeout (1 s here) most directly.
        let url = server.url("stall/1/0/30/f.bin")
        let start = Date()
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.action, .downloaded)
        XCTAssertEqual(server.requests().count, 2)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "the 1 s stall timeout must end the silent transfer long before the server does")
        XCTAssertTrue(transcript.warnings.contains { $0.contains("retry 1 of 2") }, "\(transcript.warnings)")
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testServerIgnoringRangeRestartsFromZero() throws {
        let url = server.url("norange/drop/1/30000/f.bin")
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.resumed, false)
        let reqs = server.requests()
        XCTAssertEqual(reqs.count, 2)
        XCTAssertEqual(reqs[1]["range"] as? String, "bytes=30000-")
        XCTAssertEqual(reqs[1]["status"] as? Int, 200)
        XCTAssertTrue(transcript.warnings.contains { $0.contains("ignored the Range request") })
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testRedirectIsFollowed() throws {
        let results = try fetcher().fetch([spec([server.url("redirect/f.bin")])])
        XCTAssertEqual(results.first?.action, .downloaded)
        XCTAssertEqual(server.requests().map { $0["status"] as? Int }, [302, 200])
    }

    func testChecksumMismatchFailsAndLeavesNothing() throws {
        var s = spec([server.url("f.bin")])
        s.sha256 = String(repeating: "0", count: 64)
        let failure = fetchFailure { try fetcher().fetch([s]) }
        let message = failure?.description ?? ""
        XCTAssertTrue(message.contains("checksum mismatch"), message)
        XCTAssertTrue(message.contains("source `blob`"), message)
        XCTAssertTrue(message.contains(server.url("f.bin")), message)
        XCTAssertTrue(message.contains("hint:"), message)
        XCTAssertEqual(allFiles(out), [], "no final file, no partial, no manifest")
    }

    func testOversizedResponseIsRejected() throws {
        var s = spec([server.url("f.bin")])
        s.size = 50_000
        let message = fetchFailure { try fetcher().fetch([s]) }?.description ?? ""
        XCTAssertTrue(message.contains("more than the declared 50000 bytes"), message)
        XCTAssertEqual(allFiles(out), [])
    }

    func testTruncatedDownloadFailsKeepsPartialAndResumesOnNextRun() throws {
        // The first two requests are cut after 30000 bytes each; retries = 1 allows exactly two.
        let url = server.url("drop/2/30000/f.bin")
        let message = fetchFailure { try fetcher(retries: 1).fetch([spec([url])]) }?.description ?? ""
        XCTAssertTrue(message.contains("truncated download"), message)
        XCTAssertTrue(message.contains("after 2 attempts"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("data/f.bin").path))
        XCTAssertEqual(allFiles(out), ["data/.f.bin.part"], "only the hidden partial is kept")

        let results = try fetcher(retries: 1).fetch([spec([url])])
        XCTAssertEqual(results.first?.resumed, true)
        XCTAssertEqual(server.requests().map { $0["range"] as? String }, [nil, "bytes=30000-", "bytes=60000-"])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
        assertOnlyManifestAnd(["data/f.bin"])
    }

    func testStalePartialWithWrongBytesIsRedownloadedFromZero() throws {
        let partial = out.appendingPathComponent("data/.f.bin.part")
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 7, count: 10_000).write(to: partial)
        let results = try fetcher().fetch([spec([server.url("f.bin")])])
        XCTAssertEqual(results.first?.action, .downloaded)
        XCTAssertEqual(server.requests().map { $0["range"] as? String }, ["bytes=10000-", nil])
        XCTAssertTrue(transcript.warnings.contains { $0.contains("does not match its sha256") })
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testConcurrentFetchOfTheSameFileIsRefused() throws {
        let partial = out.appendingPathComponent("data/.f.bin.part")
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(partial.path, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX), 0)   // as another fetch downloading it would hold
        let message = fetchFailure { try fetcher().fetch([spec([server.url("f.bin")])]) }?.description ?? ""
        XCTAssertTrue(message.contains("another fetch is downloading into this file"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("data/f.bin").path))
    }

    func testUnreachableURLWithoutBackupFails() throws {
        // Nothing listens on port 1 of the loopback address: the connection is refused.
        let url = "http://127.0.0.1:1/f.bin"
        let message = fetchFailure { try fetcher(retries: 1).fetch([spec([url])]) }?.description ?? ""
        XCTAssertTrue(message.contains("could not fetch `data/f.bin` from any URL"), message)
        XCTAssertTrue(message.contains(url), message)
        XCTAssertTrue(message.contains("--mirror"), message)
        XCTAssertEqual(allFiles(out), [])
    }

    func testOtherSourcesAreFetchedWhenOneFails() throws {
        let good = makeSpec("good", file: "good.bin", urls: [server.url("f.bin")], content: content)
        let bad = makeSpec("bad", file: "bad.bin", urls: [server.url("nothing-here")], content: content)
        let failure = fetchFailure { try fetcher().fetch([bad, good]) }
        XCTAssertEqual(failure?.errors.count, 1)
        XCTAssertEqual(failure?.results.map(\.file), ["good.bin"])
        XCTAssertEqual(allFiles(out), ["good.bin"], "no manifest after a failed run")
    }

    func testFileURL() throws {
        let url = root.appendingPathComponent("f.bin").absoluteString
        XCTAssertTrue(url.hasPrefix("file://"))
        let results = try fetcher().fetch([spec([url])])
        XCTAssertEqual(results.first?.from, url)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testMissingFileURLFallsBackToHTTP() throws {
        let missing = root.appendingPathComponent("nope.bin").absoluteString
        let results = try fetcher().fetch([spec([missing, server.url("f.bin")])])
        XCTAssertEqual(results.first?.from, server.url("f.bin"))
    }

    func testAlreadyVerifiedFileIsSkippedAndKeepsProvenance() throws {
        _ = try fetcher().fetch([spec([server.url("f.bin")])])
        let before = server.requests().count
        let manifestBytes = try Data(contentsOf: out.appendingPathComponent("manifest.json"))
        Thread.sleep(forTimeInterval: 1.1)   // so that a rewritten manifest would get a new createdAt
        let again = try fetcher().fetch([spec([server.url("f.bin")])])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("manifest.json")), manifestBytes,
                       "an unchanged directory keeps its manifest byte for byte")
        XCTAssertEqual(again.map(\.action), [.alreadyVerified])
        XCTAssertEqual(server.requests().count, before, "no request for a verified file")
        XCTAssertTrue(transcript.lines.last?.hasPrefix("skipped     data/f.bin") == true)
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.stats["provenance"]?["data/f.bin"]?["from"]?.stringValue, server.url("f.bin"))
    }

    func testDamagedExistingFileIsReplaced() throws {
        _ = try fetcher().fetch([spec([server.url("f.bin")])])
        let final = out.appendingPathComponent("data/f.bin")
        var damaged = content
        damaged[5] ^= 0xFF
        try damaged.write(to: final)
        let again = try fetcher().fetch([spec([server.url("f.bin")])])
        XCTAssertEqual(again.map(\.action), [.downloaded])
        XCTAssertEqual(try Data(contentsOf: final), content)
        XCTAssertTrue(transcript.warnings.contains { $0.contains("does not match the declared size and sha256") })
    }

    func testMirrorByPathAndByBasename() throws {
        let mirror = tmp.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("data"), withIntermediateDirectories: true)
        try content.write(to: mirror.appendingPathComponent("data/f.bin"))
        try content.write(to: mirror.appendingPathComponent("g.bin"))
        // URLs that would fail prove the mirror was used.
        let a = makeSpec("a", file: "data/f.bin", urls: [server.url("missing")], content: content)
        let b = makeSpec("b", file: "deep/dir/g.bin", urls: [server.url("missing")], content: content)
        let results = try fetcher(mirror: mirror).fetch([a, b])
        XCTAssertEqual(results.map(\.action), [.mirrored, .mirrored])
        XCTAssertEqual(results.map(\.from), [mirror.appendingPathComponent("data/f.bin").path, mirror.appendingPathComponent("g.bin").path])
        XCTAssertEqual(server.requests().count, 0)
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.inputs.map(\.path).sorted(), results.map(\.from).sorted())
        XCTAssertTrue(transcript.lines[0].hasPrefix("mirror      data/f.bin"))
    }

    func testStalePartialIsRemovedWhenTheMirrorProvidesTheFile() throws {
        let mirror = tmp.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror, withIntermediateDirectories: true)
        try content.write(to: mirror.appendingPathComponent("f.bin"))
        let partial = out.appendingPathComponent("data/.f.bin.part")
        try FileManager.default.createDirectory(at: partial.deletingLastPathComponent(), withIntermediateDirectories: true)
        try content.prefix(1000).write(to: partial)
        XCTAssertEqual(try fetcher(mirror: mirror).fetch([spec([server.url("f.bin")])]).map(\.action), [.mirrored])
        assertOnlyManifestAnd(["data/f.bin"])
    }

    func testBackupReturning404AfterAPartialIsNotCalledTruncated() throws {
        let primary = server.url("drop/99/30000/f.bin")
        let message = fetchFailure { try fetcher(retries: 0).fetch([spec([primary, server.url("gone.bin")])]) }?.description ?? ""
        XCTAssertTrue(message.contains("\(primary): truncated download"), message)
        XCTAssertTrue(message.contains("\(server.url("gone.bin")): The requested URL returned error: 404"), message)
        XCTAssertEqual(server.requests().last?["range"] as? String, "bytes=30000-", "the backup is asked for the rest")
    }

    func testMirrorWithWrongHashIsReportedThenURLIsUsed() throws {
        let mirror = tmp.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("data"), withIntermediateDirectories: true)
        var wrong = content
        wrong[0] ^= 1
        try wrong.write(to: mirror.appendingPathComponent("data/f.bin"))
        let results = try fetcher(mirror: mirror).fetch([spec([server.url("f.bin")])])
        XCTAssertEqual(results.map(\.action), [.downloaded])
        XCTAssertTrue(transcript.warnings.contains { $0.contains("mirror file") && $0.contains("ignoring it and trying the URLs") },
                      "\(transcript.warnings)")
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
    }

    func testMissingMirrorDirectoryIsAnError() {
        let missing = tmp.appendingPathComponent("no-such-mirror")
        XCTAssertThrowsError(try fetcher(mirror: missing).fetch([spec([server.url("f.bin")])])) { error in
            XCTAssertTrue("\(error)".contains("the mirror directory does not exist"), "\(error)")
        }
        XCTAssertEqual(server.requests().count, 0)
    }

    func testMirrorResolution() {
        XCTAssertEqual(FetchOptions.resolveMirror(flag: "/a", environment: ["LLMFT_MIRROR": "/b"])?.path, "/a")
        XCTAssertEqual(FetchOptions.resolveMirror(flag: nil, environment: ["LLMFT_MIRROR": "/b"])?.path, "/b")
        XCTAssertNil(FetchOptions.resolveMirror(flag: nil, environment: [:]))
        XCTAssertNil(FetchOptions.resolveMirror(flag: nil, environment: ["LLMFT_MIRROR": ""]))
    }

    func testManifestKeepsFilesOfSourcesNotFetchedThisRun() throws {
        let a = makeSpec("a", file: "a.bin", urls: [server.url("f.bin")], content: content)
        let b = makeSpec("b", file: "b.bin", urls: [server.url("sub/f.bin")], content: content)
        _ = try fetcher().fetch([a, b])
        _ = try fetcher().fetch([a])     // as with `--only a`
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.outputs.map(\.path), ["a.bin", "b.bin"])
        XCTAssertEqual(manifest.stats["provenance"]?["b.bin"]?["from"]?.stringValue, server.url("sub/f.bin"))
    }

    // MARK: - Unpinned sources (no sha256 declared: weights.yaml's larger GPT-2 sizes)

    func unpinned(_ urls: [String], file: String = "data/f.bin", size: Int? = nil) -> SourceSpec {
        SourceSpec(name: "blob", file: file, urls: urls, sha256: nil, size: size)
    }

    func testUnpinnedSourceIsDownloadedRecordedAndThenHeldToTheRecord() throws {
        let results = try fetcher().fetch([unpinned([server.url("f.bin")])])
        XCTAssertEqual(results.map(\.action), [.downloaded])
        XCTAssertEqual(results.first?.sha256, FileHash.sha256(of: content))
        XCTAssertEqual(results.first?.size, content.count)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
        XCTAssertTrue(transcript.lines[0].contains("UNPINNED: sha256 \(FileHash.sha256(of: content)) recorded, not verified"), transcript.lines[0])
        XCTAssertTrue(transcript.warnings.contains { $0.contains("is unpinned") && $0.contains("sha256: \(FileHash.sha256(of: content))")
            && $0.contains("size: \(content.count)") }, "\(transcript.warnings)")
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.outputs, [FileRecord(path: "data/f.bin", sha256: FileHash.sha256(of: content), size: content.count)])
        XCTAssertEqual(manifest.stats["provenance"]?["data/f.bin"]?["unpinned"], true)

        // The second run holds the file to the recorded hash: skipped without a request ...
        let before = server.requests().count
        XCTAssertEqual(try fetcher().fetch([unpinned([server.url("f.bin")])]).map(\.action), [.alreadyVerified])
        XCTAssertEqual(server.requests().count, before)
        XCTAssertTrue(transcript.lines.last?.contains("recorded when it was fetched; unpinned") == true, "\(transcript.lines)")
        // ... and a changed file is not accepted as the recorded one: it is fetched again.
        var damaged = content
        damaged[7] ^= 0xFF
        try damaged.write(to: out.appendingPathComponent("data/f.bin"))
        XCTAssertEqual(try fetcher().fetch([unpinned([server.url("f.bin")])]).map(\.action), [.downloaded])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("data/f.bin")), content)
        XCTAssertTrue(transcript.warnings.contains { $0.contains("does not match the size and sha256 recorded when it was fetched") },
                      "\(transcript.warnings)")
    }

    func testUnpinnedSourceStillNeedsACompleteTransferAndADeclaredSize() throws {
        // A body shorter than its Content-Length is incomplete with or without a hash to check.
        let failure = fetchFailure { try fetcher(retries: 0).fetch([unpinned([server.url("drop/9/30000/f.bin")])]) }
        XCTAssertTrue(failure?.description.contains("truncated download") == true, failure?.description ?? "no failure")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("data/f.bin").path))
        // A declared size is checked even without a hash.
        let sized = fetchFailure { try fetcher(retries: 0).fetch([unpinned([server.url("f.bin")], size: content.count - 1)]) }
        XCTAssertTrue(sized?.description.contains("more than the declared \(content.count - 1) bytes") == true, sized?.description ?? "no failure")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("data/f.bin").path))
    }

    func testUnpinnedSourceTakesOnlyTheExactMirrorPath() throws {
        // Every weights file is called model.safetensors: without a hash a basename match could be any size.
        let mirror = tmp.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("medium"), withIntermediateDirectories: true)
        try content.write(to: mirror.appendingPathComponent("model.bin"))
        XCTAssertNotNil(fetchFailure { try fetcher(retries: 0, mirror: mirror).fetch([unpinned([server.url("missing")], file: "medium/model.bin")]) })
        XCTAssertTrue(transcript.warnings.contains { $0.contains("not in the mirror") }, "\(transcript.warnings)")
        try content.write(to: mirror.appendingPathComponent("medium/model.bin"))
        let results = try fetcher(mirror: mirror).fetch([unpinned([server.url("missing")], file: "medium/model.bin")])
        XCTAssertEqual(results.map(\.action), [.mirrored])
        XCTAssertEqual(results.first?.from, mirror.appendingPathComponent("medium/model.bin").path)
        XCTAssertTrue(results[0].unpinned)
    }
}

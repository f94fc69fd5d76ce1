import ArtifactKit
@testable import Fetcher
import Foundation
import TestSupport
import XCTest

/// Zip extraction with libzip, on archives crafted by Tests/Fixtures/fetch/make_zips.py and on
/// the real SMS Spam Collection zip; python's zipfile is the independent reference.
final class ExtractTests: XCTestCase {
    var tmp: URL!
    var zips: URL!
    var out: URL!
    var transcript = Transcript()

    override func setUpWithError() throws {
        tmp = try TestPaths.makeTempDir("extract")
        zips = tmp.appendingPathComponent("zips")
        out = tmp.appendingPathComponent("out")
        let script = TestPaths.fixtures.appendingPathComponent("fetch/make_zips.py")
        _ = try python("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                       [script.path, zips.path])
        transcript = Transcript()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    /// A source for one of the crafted archives, fetched through a file:// URL.
    func source(_ zip: String, members: [String: String], cap: Int? = nil) throws -> SourceSpec {
        let url = zips.appendingPathComponent(zip)
        return makeSpec("archive", file: "archive.zip", urls: [url.absoluteString], content: try Data(contentsOf: url),
                        extract: ExtractSpec(members: members, maxUncompressedBytes: cap))
    }

    func fetch(_ s: SourceSpec) throws -> [FetchResult] {
        try Fetcher(options: quickOptions(out: out, transcript: transcript)).fetch([s])
    }

    /// Member bytes as python's zipfile reads them.
    func reference(_ zip: URL, _ member: String) throws -> Data {
        try python("import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))", [zip.path, member])
    }

    func expectFailure(_ s: SourceSpec, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        let message = fetchFailure({ _ = try fetch(s) }, file: file, line: line)?.description ?? ""
        XCTAssertTrue(message.contains(needle), "expected \(needle) in: \(message)", file: file, line: line)
        XCTAssertTrue(message.contains("source `archive`"), message, file: file, line: line)
        // The verified archive stays; no extracted output, temporary file or manifest does.
        XCTAssertEqual(allFiles(out), ["archive.zip"], file: file, line: line)
    }

    func testExtractsDeclaredMembersLikePythonZipfile() throws {
        let s = try source("good.zip", members: ["data/a.txt": "text/a.txt", "b.txt": "b.txt"])
        let results = try fetch(s)
        XCTAssertEqual(results.map(\.action), [.downloaded, .extracted, .extracted])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("text/a.txt")), try reference(zips.appendingPathComponent("good.zip"), "data/a.txt"))
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("b.txt")), try reference(zips.appendingPathComponent("good.zip"), "b.txt"))
        XCTAssertEqual(allFiles(out), ["archive.zip", "b.txt", "manifest.json", "text/a.txt"])
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.outputs.map(\.path), ["archive.zip", "b.txt", "text/a.txt"])
        XCTAssertEqual(manifest.stats["provenance"]?["text/a.txt"]?["member"]?.stringValue, "data/a.txt")
        XCTAssertEqual(manifest.stats["provenance"]?["text/a.txt"]?["from"]?.stringValue, "archive.zip")

        // Second run: archive and members are verified in place, nothing is rewritten.
        let again = try fetch(s)
        XCTAssertEqual(again.map(\.action), [.alreadyVerified, .extractedAlreadyVerified, .extractedAlreadyVerified])
    }

    func testDamagedExtractedFileIsExtractedAgain() throws {
        let s = try source("good.zip", members: ["b.txt": "b.txt"])
        _ = try fetch(s)
        try Data("tampered\n".utf8).write(to: out.appendingPathComponent("b.txt"))
        XCTAssertEqual(try fetch(s).map(\.action), [.alreadyVerified, .extracted])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("b.txt")), Data("member b\n".utf8))
    }

    func testArchiveWithZipSlipMemberIsRefused() throws {
        expectFailure(try source("slip.zip", members: ["good.txt": "good.txt"]), "`../evil`")
        expectFailure(try source("slip.zip", members: ["good.txt": "good.txt"]), "zip-slip")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("evil").path))
    }

    func testDeclaredZipSlipNamesAreRefused() throws {
        for members in [["../evil": "evil"], ["good.txt": "../evil"], ["good.txt": "/tmp/evil"], ["/etc/passwd": "x"]] {
            let s = try source("good.zip", members: members)
            XCTAssertThrowsError(try fetch(s)) { error in
                XCTAssertTrue("\(error)".contains("zip-slip"), "\(error)")
            }
            XCTAssertEqual(allFiles(out), [], "rejected before anything is fetched")
        }
    }

    func testCorruptCompressedDataIsReported() throws {
        expectFailure(try source("corrupt.zip", members: ["data/a.txt": "a.txt"]), "corrupt zip")
    }

    func testNotAZipIsReported() throws {
        expectFailure(try source("notzip.zip", members: ["a": "a"]), "not a readable zip archive (corrupt zip)")
    }

    func testCRCMismatchIsReported() throws {
        expectFailure(try source("crc.zip", members: ["a.txt": "a.txt"]), "CRC32 mismatch in member `a.txt`")
    }

    func testMemberLargerThanItsHeaderIsStopped() throws {
        let s = try source("lying.zip", members: ["a.txt": "a.txt"])
        let message = fetchFailure({ _ = try fetch(s) })?.description ?? ""
        XCTAssertTrue(message.contains("member `a.txt`"), message)
        XCTAssertTrue(message.contains("corrupt"), message)
        XCTAssertEqual(allFiles(out), ["archive.zip"])
    }

    func testMissingMemberIsNamed() throws {
        expectFailure(try source("good.zip", members: ["nope.txt": "nope.txt"]), "has no member `nope.txt` (it holds: `data/a.txt`, `b.txt`)")
    }

    func testUncompressedSizeCap() throws {
        expectFailure(try source("big.zip", members: ["zeros.bin": "zeros.bin"], cap: 999_999), "more than max_uncompressed_bytes = 999999")
        XCTAssertEqual(try fetch(try source("big.zip", members: ["zeros.bin": "zeros.bin"], cap: 1_000_000)).last?.size, 1_000_000)
    }

    func testCRC32MatchesStandardCheckValueAndZlib() throws {
        XCTAssertEqual(CRC32.checksum(Data("123456789".utf8)), 0xCBF4_3926)
        let data = testBytes(70_000)
        let file = tmp.appendingPathComponent("crc.bin")
        try data.write(to: file)
        let zlib = try python("import sys, zlib; print(zlib.crc32(open(sys.argv[1], 'rb').read()))", [file.path])
        XCTAssertEqual(String(decoding: zlib, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), String(CRC32.checksum(data)))
        // Split updates give the same result.
        let split = data.withUnsafeBytes { CRC32.update(CRC32.update(0, UnsafeRawBufferPointer(rebasing: $0[..<12345])), UnsafeRawBufferPointer(rebasing: $0[12345...])) }
        XCTAssertEqual(split, CRC32.checksum(data))
    }

    /// The book's data set over HTTP from the local test server, as the pipeline declares it.
    func testRealSMSZipOverHTTP() throws {
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("../shared/assets is absent (set LLMFT_ASSETS): the real SMS zip is not available")
        }
        let zip = assets.appendingPathComponent("sms-spam-collection.zip")
        let www = tmp.appendingPathComponent("www")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: zip, to: www.appendingPathComponent("sms.zip"))
        let server = try TestServer(root: www)
        defer { server.stop() }

        let declared = try loadSources(fromPipelineFile: TestPaths.repoRoot.appendingPathComponent("pipeline.yaml"))
        var sms = try XCTUnwrap(declared.first { $0.name == "sms-spam-collection" })
        sms.urls = [server.url("drop/1/50000/sms.zip")]   // cut once, so the real file is also resumed
        let results = try Fetcher(options: quickOptions(out: out, transcript: transcript)).fetch([sms])
        XCTAssertEqual(results.map(\.action), [.downloaded, .extracted])
        XCTAssertEqual(results[0].resumed, true)
        XCTAssertEqual(results[1].file, "SMSSpamCollection.tsv")
        let tsv = try Data(contentsOf: out.appendingPathComponent("SMSSpamCollection.tsv"))
        XCTAssertEqual(tsv, try reference(zip, "SMSSpamCollection"))
        XCTAssertEqual(tsv.filter { $0 == 0x0A }.count, 5574, "the assets README gives 5,574 lines")
    }
}

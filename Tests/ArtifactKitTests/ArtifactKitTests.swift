import ArtifactKit
import TestSupport
import XCTest

final class ArtifactKitTests: XCTestCase {
    func testAtomicWriteLeavesOldFileWhenBodyFails() throws {
        let dir = try TestPaths.makeTempDir("atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("out.bin")
        try AtomicFile.write(Data("old".utf8), to: target)
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: target) { tmp in
            try Data("half".utf8).write(to: tmp)
            throw Boom()
        })
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "old")
        XCTAssertEqual(try DirectoryListing.files(in: dir), ["out.bin"], "the temporary file must be removed")
    }

    func testStaleTemporariesOfDeadProcessesAreRemovedOthersKept() throws {
        let dir = try TestPaths.makeTempDir("atomic-stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = ".state.\(finished.processIdentifier).0A1B2C3D.tmp"
        let alive = ".state.\(ProcessInfo.processInfo.processIdentifier).0A1B2C3D.tmp"
        for name in [dead, alive, "state", ".notes.tmp", "log.jsonl"] {
            try Data("x".utf8).write(to: dir.appendingPathComponent(name))
        }
        XCTAssertEqual(AtomicFile.removeStaleTemporaries(in: dir), [dead])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), [alive, "state", ".notes.tmp", "log.jsonl"])
    }

    func testSHA256OfKnownString() throws {
        XCTAssertEqual(FileHash.sha256(of: "abc"),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testHeaderRejectsWrongMagicAndVersion() throws {
        var w = BinaryWriter()
        ArtifactHeader(magic: "LLMFTXXX", version: 2).write(to: &w)
        var r = BinaryReader(data: w.data, source: "x.bin")
        XCTAssertThrowsError(try ArtifactHeader(magic: "LLMFTYYY", version: 2).check(&r, producer: "prepare")) { err in
            XCTAssertTrue("\(err)".contains("wrong magic"))
        }
        var r2 = BinaryReader(data: w.data, source: "x.bin")
        XCTAssertThrowsError(try ArtifactHeader(magic: "LLMFTXXX", version: 1).check(&r2, producer: "prepare")) { err in
            XCTAssertTrue("\(err)".contains("format version 2"))
        }
    }

    func testManifestRoundTrip() throws {
        let m = Manifest(format: "test", formatVersion: 1, tool: "unit", params: ["seed": 123, "name": "x"],
                         stats: ["rows": 5])
        let back = try JSONDecoder().decode(Manifest.self, from: try m.encoded())
        XCTAssertEqual(back, m)
    }
}

final class JSONTextTests: XCTestCase {
    // Expected bytes are Python's json.dumps(s, ensure_ascii=False) and json.dumps(s).
    func testEscapesLikePython() {
        let s = "a\"b\\c\nd\re\tf\u{08}g\u{0C}h\u{01}é😀"
        XCTAssertEqual(JSONText.string(s), #""a\"b\\c\nd\re\tf\bg\fh\u0001é😀""#)
        XCTAssertEqual(JSONText.string(s, asciiOnly: true), #""a\"b\\c\nd\re\tf\bg\fh\u0001\u00e9\ud83d\ude00""#)
    }
}

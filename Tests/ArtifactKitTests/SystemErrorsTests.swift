import ArtifactKit
import TestSupport
import XCTest

/// System errors reach the user in our words: which file, what happened, what to do.
final class SystemErrorsTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("system-errors") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A real ENOSPC: the body writes to /dev/full, which fails every write with "no space left"
    /// (Foundation reports it as NSCocoaErrorDomain 640, the raw text the issue quotes).
    func testAFullDiskNamesTheOutputTheSpaceItNeededAndKeepsThePreviousFile() throws {
        let target = dir.appendingPathComponent("train.bin")
        try AtomicFile.write(Data("old".utf8), to: target)
        XCTAssertThrowsError(try AtomicFile.write(to: target, bytes: 3 * 1024 * 1024) { _ in
            try Data(count: 1 << 20).write(to: URL(fileURLWithPath: "/dev/full"))
        }) { error in
            guard let e = error as? PipelineError else { return XCTFail("not translated: \(error)") }
            XCTAssertTrue(e.message.hasPrefix("cannot write train.bin: the disk is full (it needs 3.0 MiB; "), e.message)
            XCTAssertTrue(e.message.hasSuffix(" free on that file system)"), e.message)
            XCTAssertEqual(e.location, target.path)
            XCTAssertTrue(e.hint?.contains("free some space") == true, "\(e)")
            XCTAssertTrue(e.hint?.contains("the previous train.bin is kept unchanged") == true, "\(e)")
            XCTAssertFalse(e.description.contains("NSCocoaErrorDomain"), e.description)
        }
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "old")
        XCTAssertEqual(try DirectoryListing.files(in: dir), ["train.bin"], "the temporary file must be removed")
    }

    func testAFullDiskWithoutAnEarlierOutputSaysNothingWasWritten() throws {
        let target = dir.appendingPathComponent("model.safetensors")
        XCTAssertThrowsError(try AtomicFile.write(to: target) { _ in
            try Data(count: 4096).write(to: URL(fileURLWithPath: "/dev/full"))
        }) { error in
            let e = error as? PipelineError
            XCTAssertTrue(e?.message.contains("its size was not known in advance") == true, "\(error)")
            XCTAssertTrue(e?.hint?.hasSuffix("nothing was written") == true, "\(error)")
        }
        XCTAssertEqual(try DirectoryListing.files(in: dir), [])
    }

    func testAMissingInputGetsTheCallersHintAndOtherFailuresTheSystemsAdvice() throws {
        let missing = dir.appendingPathComponent("train.bin")
        XCTAssertThrowsError(try Data.reading(missing, what: "the token shard", missingHint: "rerun prepare")) { error in
            XCTAssertEqual(error as? PipelineError,
                           PipelineError("cannot read the token shard: no such file or folder", location: missing.path, hint: "rerun prepare"))
        }
        // A folder where a file was expected: not "missing", so the caller's hint would mislead.
        XCTAssertThrowsError(try Data.reading(dir, what: "the token shard", missingHint: "rerun prepare")) { error in
            let e = error as? PipelineError
            XCTAssertTrue(e?.message.hasPrefix("cannot read the token shard: ") == true, "\(error)")
            XCTAssertNotEqual(e?.hint, "rerun prepare")
            XCTAssertFalse("\(error)".contains("Domain="), "\(error)")
        }
    }

    func testFoundationErrorsAreTranslatedAndOthersPassUnchanged() throws {
        let ns = NSError(domain: NSCocoaErrorDomain, code: NSFileWriteNoPermissionError,
                         userInfo: [NSFilePathErrorKey: "/data/out/manifest.json"])
        XCTAssertEqual(PipelineError.translating(ns) as? PipelineError,
                       PipelineError("permission denied", location: "/data/out/manifest.json",
                                     hint: "check the permissions of the file and its folder"))
        struct Other: Error {}
        XCTAssertTrue(PipelineError.translating(Other()) is Other)
    }
}

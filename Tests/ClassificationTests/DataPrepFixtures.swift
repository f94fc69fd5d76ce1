import ArtifactKit
import Foundation
import TestSupport
import Classification
import XCTest

/// Shared access to the committed pandas/numpy fixtures and the real SMS data.
enum DataPrepFixtures {
    static let directory = TestPaths.fixtures.appendingPathComponent("dataprep")

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The SMS Spam Collection TSV extracted once per test run from the shared zip, or a skip.
    static func smsTSV() throws -> URL {
        if let cached = extracted { return cached }
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("needs ../shared/assets (or $LLMFT_ASSETS) with sms-spam-collection.zip")
        }
        let dir = try TestPaths.makeTempDir("dataprep-sms")
        let unzip = try runProcess(URL(fileURLWithPath: "/usr/bin/unzip"),
                                   ["-q", "-o", assets.appendingPathComponent("sms-spam-collection.zip").path, "SMSSpamCollection", "-d", dir.path])
        XCTAssertEqual(unzip.status, 0, "unzip failed: \(unzip.stderr)")
        let url = dir.appendingPathComponent("SMSSpamCollection")
        extracted = url
        return url
    }

    /// A temporary directory holding stand-in encoder.json and vocab.bpe (hashed as inputs; tests
    /// that pass a fake tokenizer need any bytes there).
    static func directoryWithFakeVocabulary(_ prefix: String) throws -> URL {
        let dir = try TestPaths.makeTempDir(prefix)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("encoder.json"))
        try Data("#".utf8).write(to: dir.appendingPathComponent("vocab.bpe"))
        return dir
    }

    static func vocabularyDirectory() throws -> URL {
        guard let assets = TestPaths.sharedAssets else { throw XCTSkip("needs ../shared/assets/gpt2") }
        return assets.appendingPathComponent("gpt2")
    }

    nonisolated(unsafe) private static var extracted: URL?

    /// The message of a thrown PipelineError (fails the test for any other outcome).
    static func pipelineError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> PipelineError? {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let e as PipelineError {
            return e
        } catch {
            XCTFail("expected a PipelineError, got \(error)", file: file, line: line)
        }
        return nil
    }
}

import Foundation
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights
import TestSupport

/// Base class of the weights tests: shared fixtures and helpers live here as members (not globals)
/// so they cannot collide with other helpers' names in the GPT2Tests target.
class WeightsTestCase: XCTestCase {
    /// The tiny model of Tests/Fixtures/weights (made by tools/reference/make_weights_fixture.py).
    let tinyConfig = GPT2Config(name: "tiny", vocabSize: 300, contextLength: 32, embDim: 64, nHeads: 4, nLayers: 2)

    var weightsFixtures: URL { TestPaths.fixtures.appendingPathComponent("weights") }

    /// An empty temporary directory of the test at hand: made before it, removed after it.
    private(set) var dir: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        dir = try TestPaths.makeTempDir(String(describing: type(of: self)))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
        try super.tearDownWithError()
    }

    /// Builds safetensors bytes from a raw header and data, to make files no writer would produce.
    func rawSafetensors(header: String, data: [UInt8], headerLength: UInt64? = nil) -> Data {
        var out = Data()
        let h = Array(header.utf8)
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: data)
        return out
    }

    /// A tensor for `writeRaw`: any dtype, bytes as given.
    struct RawTensor {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytes: [UInt8]
    }

    /// Writes tensors of any dtype with correct offsets (a valid file unless the tensors are odd).
    func writeRaw(_ tensors: [RawTensor], metadata: [String: String] = [:], to url: URL) throws {
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append("\"__metadata__\":{" + metadata.map { "\"\($0)\":\"\($1)\"" }.joined(separator: ",") + "}")
        }
        var offset = 0
        var data: [UInt8] = []
        for t in tensors {
            parts.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
            data += t.bytes
        }
        try rawSafetensors(header: "{" + parts.joined(separator: ",") + "}", data: data).write(to: url)
    }

    func f32Bytes(_ values: [Float]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// Reads every tensor of a safetensors file as raw bytes, to rewrite it with changes.
    func rawTensors(of url: URL) throws -> [RawTensor] {
        let file = try SafetensorsFile(contentsOf: url)
        return try file.tensorNames.map { name in
            let info = file.info(name)!
            return RawTensor(name: name, dtype: info.dtype, shape: info.shape, bytes: try file.withRawBytes(name) { Array($0) })
        }
    }

    /// The message of the error `body` throws (fails the test when nothing is thrown).
    func errorMessage(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch {
            return String(describing: error)
        }
    }

    func assertMessage(_ message: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for p in parts {
            XCTAssertTrue(message.contains(p), "message does not mention \"\(p)\": \(message)", file: file, line: line)
        }
    }
}

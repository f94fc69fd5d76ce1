import ArtifactKit
import Foundation
import TestSupport
import Instruct
import XCTest

/// `Tests/Fixtures/instruct/reference.json`, written by tools/reference/make_instruct_fixture.py
/// (tiktoken + PyTorch following the book's chapter-7 data code).
struct InstructReference: Decodable {
    struct Source: Decodable { var file: String; var sha256: String; var size: Int; var entries: Int }
    struct Entry: Decodable { var instruction: String; var input: String; var output: String }
    struct Split: Decodable {
        var rows: Int
        var rows_sha256: String
        var lengths: [Int]
        var prompt_lengths: [Int]
        var total_tokens: Int
        var max_tokens: Int
        var min_tokens: Int
        var prompt_not_prefix_rows: [Int]
        var first_rows: [[Int]]
        var first_entries: [Entry]
        var first_texts: [String]
        var texts_sha256: String
    }
    struct WorkedExample: Decodable { var rows: [[Int]]; var inputs: [[Int]]; var targets: [[Int]] }
    struct Group: Decodable { var indices: [Int]; var rows: [[Int]]; var prompt_lengths: [Int] }
    struct Batch: Decodable {
        var style: String
        var group: String
        var indices: [Int]
        var variant: String
        var mask_prompt: Bool
        var allowed_max_length: Int?
        var inputs: [[Int]]
        var targets: [[Int]]
    }

    var source: Source
    var split_sizes: [String: Int]
    var styles: [String: [String: Split]]
    var worked_example: WorkedExample
    var groups: [String: [String: Group]]
    var batches: [Batch]

    static func load() throws -> InstructReference {
        let url = TestPaths.fixtures.appendingPathComponent("instruct/reference.json")
        return try JSONDecoder().decode(InstructReference.self, from: Data(contentsOf: url))
    }
}

/// The shared copy of the book's `instruction-data.json`, or a skip with the reason.
func instructionDataURL() throws -> URL {
    guard let assets = TestPaths.sharedAssets else {
        throw XCTSkip("shared assets (../shared/assets or $LLMFT_ASSETS) not present: the real instruction-data.json is needed")
    }
    let url = assets.appendingPathComponent("instruction-data.json")
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw XCTSkip("\(url.path) not present")
    }
    return url
}

/// sha256 over rows of (uint32 LE count, uint16 LE tokens), as the reference script computes it.
func rowsSHA256(_ rows: [[Int]]) -> String {
    var bytes = Data()
    for row in rows {
        withUnsafeBytes(of: UInt32(row.count).littleEndian) { bytes.append(contentsOf: $0) }
        for t in row { withUnsafeBytes(of: UInt16(t).littleEndian) { bytes.append(contentsOf: $0) } }
    }
    return sha256Hex(bytes)
}

func textsSHA256(_ texts: [String]) -> String {
    var bytes = Data()
    for t in texts { bytes.append(contentsOf: Array(t.utf8)); bytes.append(0) }
    return sha256Hex(bytes)
}

func sha256Hex(_ data: Data) -> String {
    FileHash.sha256(of: data)
}

/// The templates the Python reference (reference.json) covers: the book's two.
let bookStyles: [PromptStyle] = [.alpaca, .phi3]

/// The records of an instruction file (shape detected, keys canonical).
func readRecords(_ url: URL) throws -> [InstructionRecord] {
    try InstructionRecords.read(from: url).records
}

import ArtifactKit
import Foundation
import GGUF
import GPT2
import TestSupport
import XCTest

/// The committed results of tools/reference/gguf_parity.py: gguf-py's bytes and llama.cpp's
/// greedy tokens for the tiny models of `TinyGGUFModel`.
final class GGUFParityTests: XCTestCase {
    struct Agreement: Decodable, Equatable {
        var equal_tokens: Int
        var total_tokens: Int
        var common_prefix: [Int]
    }
    struct FileEntry: Decodable {
        var gguf_py_sha256: String
        var llama_cpp_greedy: [[Int32]]
        var llama_cpp_greedy_f16_cache: [[Int32]]
        var agreement_with_ours_f32: Agreement
        var agreement_with_ours_f32_f16_cache: Agreement
        var llama_cpp_tokenization_equal: Bool
    }
    struct Parity: Decodable {
        var files: [String: FileEntry]
        var prompts: [String]
        var prompt_ids: [[Int32]]
    }
    struct Blocks: Decodable {
        var values: [[Float]]
        var q8_0_hex: String
        var f16_bits: [[UInt16]]
    }

    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: TinyGGUFModel.fixtures.appendingPathComponent(name)))
    }

    /// Q8_0 and F16 encodings bit for bit as gguf-py's quantizer (itself bit-exact with ggml),
    /// including an all-zero block, exact halves (roundf rounds them away from zero) and values
    /// beyond the int8 range.
    func testQ8_0AndF16EncodingsMatchGGUFPy() throws {
        let blocks = try Self.load("q8_0_blocks.json", as: Blocks.self)
        let encoded = TensorEncoding.encode(blocks.values.flatMap { $0 }, as: .q8_0)
        XCTAssertEqual(encoded.map { String(format: "%02x", $0) }.joined(), blocks.q8_0_hex)
        let halves = TensorEncoding.encode(blocks.values.flatMap { $0 }, as: .f16)
        let bits = halves.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        XCTAssertEqual(bits, blocks.f16_bits.flatMap { $0 })
    }

    /// Our exporter writes, for every type, with and without LoRA, exactly the bytes of gguf-py's
    /// GGUFWriter given the same metadata order and tensors (the LoRA merge done in numpy).
    func testExportsAreByteIdenticalToGGUFPy() throws {
        let parity = try Self.load("parity.json", as: Parity.self)
        let vocabulary = try TinyGGUFModel.vocabulary()
        let dir = try TestPaths.makeTempDir("gguf-parity")
        defer { try? FileManager.default.removeItem(at: dir) }
        for c in TinyGGUFModel.cases {
            let url = try TinyGGUFModel.export(c, vocabulary: vocabulary, into: dir)
            XCTAssertEqual(try FileHash.sha256(of: url), parity.files[c.file]?.gguf_py_sha256, c.file)
            try FileManager.default.removeItem(at: url)
        }
    }

    /// llama.cpp (F32 weights, F32 key/value cache) continues every prompt with exactly our
    /// greedy tokens, for the plain model and for the merged LoRA model (untied head); and its
    /// tokenizer, reading our tokenizer metadata, splits the prompts as ours does.
    func testLlamaCppGreedyTokensEqualOursAtF32() throws {
        let parity = try Self.load("parity.json", as: Parity.self)
        let tokenizer = try TinyGGUFModel.tokenizer()
        XCTAssertEqual(parity.prompts, TinyGGUFModel.prompts)
        XCTAssertEqual(try parity.prompts.map { try tokenizer.encode($0).map(Int32.init) }, parity.prompt_ids)
        for (file, lora) in [("tiny-f32.gguf", false), ("tiny-lora-f32.gguf", true)] {
            let entry = try XCTUnwrap(parity.files[file])
            XCTAssertTrue(entry.llama_cpp_tokenization_equal, file)
            XCTAssertEqual(try TinyGGUFModel.greedy(lora: lora, prompts: parity.prompt_ids), entry.llama_cpp_greedy, file)
        }
    }

    /// The agreement numbers of docs/gguf.md (F16 and Q8_0 files, and llama.cpp's default F16
    /// cache) are what our generation gives against llama.cpp's recorded tokens.
    func testRecordedAgreementIsOurs() throws {
        let parity = try Self.load("parity.json", as: Parity.self)
        let ours = try TinyGGUFModel.greedy(lora: false, prompts: parity.prompt_ids)
        let oursLoRA = try TinyGGUFModel.greedy(lora: true, prompts: parity.prompt_ids)
        for c in TinyGGUFModel.cases {
            let entry = try XCTUnwrap(parity.files[c.file])
            let mine = c.lora ? oursLoRA : ours
            XCTAssertEqual(Self.agreement(mine, entry.llama_cpp_greedy), entry.agreement_with_ours_f32, c.file)
            XCTAssertEqual(Self.agreement(mine, entry.llama_cpp_greedy_f16_cache), entry.agreement_with_ours_f32_f16_cache, c.file)
        }
    }

    static func agreement(_ a: [[Int32]], _ b: [[Int32]]) -> Agreement {
        let equal = zip(a, b).reduce(0) { n, rows in n + zip(rows.0, rows.1).filter { $0 == $1 }.count }
        let prefixes = zip(a, b).map { rows in zip(rows.0, rows.1).prefix { $0 == $1 }.count }
        return Agreement(equal_tokens: equal, total_tokens: a.reduce(0) { $0 + $1.count }, common_prefix: prefixes)
    }
}

import ArtifactKit
import Foundation
import GPT2Tokenizer

/// GPT-2's byte-level BPE vocabulary as llama.cpp's `gpt2` tokenizer model reads it from GGUF
/// metadata (what its converter writes for openai-community/gpt2):
///
/// - `tokenizer.ggml.tokens`: every token's string in id order, exactly the keys of
///   `encoder.json` (byte-level BPE strings, where e.g. "Ġ" stands for the space byte);
/// - `tokenizer.ggml.token_type`: int32 per token, 1 (normal) except `<|endoftext|>`, which is
///   3 (control): the Hugging Face tokenizer lists it as a special added token;
/// - `tokenizer.ggml.merges`: the merge rules "left right" in rank order, the lines of
///   `vocab.bpe` after its `#version` line;
/// - bos / eos / unknown token id: all `<|endoftext|>` (50256), as in GPT-2's tokenizer config;
/// - `tokenizer.ggml.pre` = "gpt-2": selects GPT-2's pre-tokenizer regex (without it llama.cpp
///   falls back to a default one and warns that quality will be degraded).
public struct GGUFVocabulary: Sendable {
    public var tokens: [String]
    public var tokenTypes: [Int32]
    public var merges: [String]
    public var endOfTextID: Int

    public static let normalType: Int32 = 1
    public static let controlType: Int32 = 3

    /// Reads `encoder.json` and `vocab.bpe` from `directory`. Any id gap, duplicate, or a size
    /// other than GPT-2's 50,257 is an error naming the file.
    public init(directory: URL) throws {
        let encoderURL = directory.appendingPathComponent("encoder.json")
        let mergesURL = directory.appendingPathComponent("vocab.bpe")
        tokens = try Self.tokens(encoderURL)
        merges = try Self.merges(mergesURL)
        endOfTextID = GPT2BPETokenizer.endOfTextID
        guard tokens[endOfTextID] == GPT2BPETokenizer.endOfText else {
            throw PipelineError("encoder.json: id \(endOfTextID) is \"\(tokens[endOfTextID])\", expected \(GPT2BPETokenizer.endOfText)",
                                location: encoderURL.path, hint: Self.hint)
        }
        tokenTypes = tokens.indices.map { $0 == GPT2BPETokenizer.endOfTextID ? Self.controlType : Self.normalType }
    }

    static let hint = "download the vocabulary again with `pipeline run fetch`; encoder.json and vocab.bpe must come from the same GPT-2 release"

    static func tokens(_ url: URL) throws -> [String] {
        let data = try Data.reading(url, what: "encoder.json")
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int] else {
            throw PipelineError("encoder.json is not a JSON object of token -> id", location: url.path, hint: hint)
        }
        let size = GPT2BPETokenizer.expectedVocabularySize
        guard object.count == size else {
            throw PipelineError("encoder.json has \(object.count) tokens, GPT-2 has \(size)", location: url.path, hint: hint)
        }
        var tokens = [String?](repeating: nil, count: size)
        for (token, id) in object {
            guard (0..<size).contains(id), tokens[id] == nil else {
                throw PipelineError("encoder.json: id \(id) of \"\(token)\" is out of range or used twice", location: url.path, hint: hint)
            }
            tokens[id] = token
        }
        return tokens.map { $0! }
    }

    static func merges(_ url: URL) throws -> [String] {
        let text = String(decoding: try Data.reading(url, what: "vocab.bpe"), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if lines.first?.hasPrefix("#version") == true { lines.removeFirst() }
        if let bad = lines.firstIndex(where: { $0.split(separator: " ", omittingEmptySubsequences: false).count != 2 }) {
            throw PipelineError("vocab.bpe line \(bad + 2) is not \"left right\": \"\(lines[bad])\"", location: url.path, hint: hint)
        }
        guard !lines.isEmpty else { throw PipelineError("vocab.bpe has no merges", location: url.path, hint: hint) }
        return lines
    }

    /// The tokenizer metadata pairs, in the order llama.cpp's converter writes them.
    public var metadata: [(key: String, value: GGUFValue)] {
        let eot = GGUFValue.uint32(UInt32(endOfTextID))
        return [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("gpt-2")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.token_type", .int32s(tokenTypes)),
            ("tokenizer.ggml.merges", .strings(merges)),
            ("tokenizer.ggml.bos_token_id", eot),
            ("tokenizer.ggml.eos_token_id", eot),
            ("tokenizer.ggml.unknown_token_id", eot),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
    }
}

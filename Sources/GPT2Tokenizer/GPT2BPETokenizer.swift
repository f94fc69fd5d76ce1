import ArtifactKit
import Dispatch
import Foundation

/// GPT-2's byte-level BPE tokenizer, loaded from OpenAI's `encoder.json` and `vocab.bpe`.
///
/// It produces exactly the ids of tiktoken's `gpt2` encoding for any text (proven against a
/// fixture made by `tools/reference/make_tokenizer_fixture.py`): the GPT-2 pre-tokenizer splits
/// the text into pieces (see `PreTokenizer`), and each piece's UTF-8 bytes are merged
/// lowest-rank-first as tiktoken does. Encoded pieces are cached, so repeated words cost one
/// hash lookup.
///
/// Thread safety: every method may be called from any thread. `encode`/`encodeOrdinary` share
/// one cache behind a lock (concurrent callers take turns); `encodeBatch` runs workers in
/// parallel with private caches.
public final class GPT2BPETokenizer: @unchecked Sendable {
    public static let endOfText = "<|endoftext|>"
    public static let endOfTextID = 50256
    /// The size of GPT-2's vocabulary: 50,000 merges + 256 bytes + `<|endoftext|>`.
    public static let expectedVocabularySize = 50257

    let vocabulary: Vocabulary
    private let lock = NSLock()
    private var sharedEncoder: BytePairEncoder

    /// Loads `encoder.json` and `vocab.bpe` from `directory` (such as `data/raw/gpt2`).
    public convenience init(directory: URL) throws {
        try self.init(encoderJSON: directory.appendingPathComponent("encoder.json"),
                      vocabBPE: directory.appendingPathComponent("vocab.bpe"))
    }

    public init(encoderJSON: URL, vocabBPE: URL) throws {
        vocabulary = try VocabularyLoader.load(encoderJSON: encoderJSON, vocabBPE: vocabBPE)
        sharedEncoder = BytePairEncoder(vocabulary: vocabulary)
    }

    /// 50257: the ids are `0..<vocabularySize`.
    public var vocabularySize: Int { vocabulary.tokenOffsets.count - 1 }

    /// Encodes `text` as tiktoken's `encode(text, allowed_special=allowedSpecial)` does: an
    /// allowed `<|endoftext|>` becomes 50256, a disallowed one throws
    /// `TokenizerError.disallowedSpecialToken`. Unknown strings in `allowedSpecial` are ignored.
    public func encode(_ text: String, allowedSpecial: Set<String> = []) throws -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        return try Self.encode(text, allowedSpecial: allowedSpecial, with: &sharedEncoder)
    }

    /// Encodes `text` with special tokens treated as ordinary text (tiktoken's `encode_ordinary`):
    /// `<|endoftext|>` becomes the seven ordinary tokens that spell it.
    public func encodeOrdinary(_ text: String) -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        return Self.encodeOrdinary(text, with: &sharedEncoder)
    }

    /// Encodes many texts in parallel on `threads` workers (each with a private cache), returning
    /// the ids in input order. Throws the first disallowed-special error, as `encode` would.
    public func encodeBatch(_ texts: [String], allowedSpecial: Set<String> = [],
                            threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> [[Int]] {
        try encodeInParallel(texts, threads: threads) { text, encoder in
            try Self.encode(text, allowedSpecial: allowedSpecial, with: &encoder)
        }
    }

    /// `encodeOrdinary` for many texts on `threads` workers, in input order.
    public func encodeOrdinaryBatch(_ texts: [String],
                                    threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [[Int]] {
        // The closure cannot throw, so neither can the batch.
        (try? encodeInParallel(texts, threads: threads) { text, encoder in
            Self.encodeOrdinary(text, with: &encoder)
        }) ?? []
    }

    private func encodeInParallel(_ texts: [String], threads: Int,
                                  _ encodeOne: @Sendable (String, inout BytePairEncoder) throws -> [Int]) throws -> [[Int]] {
        let workers = max(1, min(threads, texts.count))
        var results = [[Int]](repeating: [], count: texts.count)
        let failures = ErrorSlots(count: workers)
        let template = BytePairEncoder(vocabulary: vocabulary)
        results.withUnsafeMutableBufferPointer { output in
            let output = UnsafeMutableSendableBuffer(output)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var encoder = template
                // Contiguous slices keep each worker's output writes apart.
                let lower = texts.count * worker / workers
                let upper = texts.count * (worker + 1) / workers
                for index in lower..<upper {
                    do {
                        output.buffer[index] = try encodeOne(texts[index], &encoder)
                    } catch {
                        failures.set(worker, error)
                        return
                    }
                }
            }
        }
        if let error = failures.first { throw error }
        return results
    }

    /// The bytes that `ids` stand for (`<|endoftext|>` decodes to its 13 ASCII bytes).
    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(ids.count * 4)
        let offsets = vocabulary.tokenOffsets
        let limit = offsets.count - 1
        try vocabulary.tokenBytes.withUnsafeBufferPointer { all in
            for (position, id) in ids.enumerated() {
                guard id >= 0 && id < limit else {
                    throw TokenizerError.idOutOfRange(id: id, position: position, vocabularySize: limit)
                }
                bytes.append(contentsOf: all[offsets[id]..<offsets[id + 1]])
            }
        }
        return bytes
    }

    /// The text that `ids` stand for. Byte sequences that are not valid UTF-8 (a token can end
    /// in the middle of a character) become U+FFFD, as Python's `bytes.decode(errors="replace")`.
    public func decode(_ ids: [Int]) throws -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }

    // MARK: - Encoding

    private static let endOfTextBytes = Array(endOfText.utf8)

    private static func encode(_ text: String, allowedSpecial: Set<String>,
                               with encoder: inout BytePairEncoder) throws -> [Int] {
        let allowEndOfText = allowedSpecial.contains(endOfText)
        var text = text
        return try text.withUTF8 { bytes -> [Int] in
            var output = [Int]()
            output.reserveCapacity(bytes.count / 3 + 1)
            var segmentStart = 0
            // Text between special tokens is encoded on its own, as tiktoken does: a run of
            // spaces right before <|endoftext|> therefore stays one piece.
            while let match = firstEndOfText(in: bytes, from: segmentStart) {
                guard allowEndOfText else { throw TokenizerError.disallowedSpecialToken(endOfText) }
                encoder.encodeOrdinary(UnsafeBufferPointer(rebasing: bytes[segmentStart..<match]), into: &output)
                output.append(endOfTextID)
                segmentStart = match + endOfTextBytes.count
            }
            encoder.encodeOrdinary(UnsafeBufferPointer(rebasing: bytes[segmentStart...]), into: &output)
            return output
        }
    }

    private static func encodeOrdinary(_ text: String, with encoder: inout BytePairEncoder) -> [Int] {
        var text = text
        return text.withUTF8 { bytes in
            var output = [Int]()
            output.reserveCapacity(bytes.count / 3 + 1)
            encoder.encodeOrdinary(bytes, into: &output)
            return output
        }
    }

    /// The byte offset of the next `<|endoftext|>` at or after `start`.
    private static func firstEndOfText(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        let pattern = endOfTextBytes
        guard bytes.count >= pattern.count else { return nil }
        var index = start
        while index <= bytes.count - pattern.count {
            if bytes[index] == pattern[0] {
                var matched = true
                for offset in 1..<pattern.count where bytes[index + offset] != pattern[offset] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return nil
    }
}

/// Lets `concurrentPerform` workers write disjoint elements of one buffer.
private struct UnsafeMutableSendableBuffer<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
    init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}

/// One error slot per worker, so the reported error is the one for the earliest failing text.
private final class ErrorSlots: @unchecked Sendable {
    private var errors: [Error?]
    private let lock = NSLock()
    init(count: Int) { errors = [Error?](repeating: nil, count: count) }
    func set(_ index: Int, _ error: Error) {
        lock.lock()
        errors[index] = error
        lock.unlock()
    }
    var first: Error? {
        lock.lock()
        defer { lock.unlock() }
        return errors.compactMap { $0 }.first
    }
}

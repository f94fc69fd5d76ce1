import ArtifactKit
import Foundation

/// Reads and cross-checks `encoder.json` and `vocab.bpe` the way tiktoken's
/// `data_gym_to_mergeable_bpe_ranks` does, reporting any problem with the file it is in.
enum VocabularyLoader {
    static let fetchCommand = "`pipeline run fetch` (or `fetch --config pipeline.yaml --out data/raw`)"

    static func load(encoderJSON: URL, vocabBPE: URL) throws -> Vocabulary {
        let encoderData = try readFile(encoderJSON, name: "encoder.json")
        let mergesData = try readFile(vocabBPE, name: "vocab.bpe")
        let (tokenBytes, tokenOffsets) = try parseEncoder(encoderData, path: encoderJSON.path)
        try checkMerges(mergesData, path: vocabBPE.path, tokenBytes: tokenBytes, tokenOffsets: tokenOffsets)

        let ordinaryCount = GPT2BPETokenizer.endOfTextID
        var tokens = PieceTable(minimumCapacity: 1 << 17)
        var byteToID = [Int32](repeating: 0, count: 256)
        tokenBytes.withUnsafeBufferPointer { all in
            for id in 0..<ordinaryCount {
                let start = tokenOffsets[id], length = tokenOffsets[id + 1] - start
                let key = all.baseAddress! + start
                if length == 1 { byteToID[Int(key[0])] = Int32(id) }
                withUnsafePointer(to: Int32(id)) { idPointer in
                    tokens.insert(key, length, hash: PieceTable.hash(key, length),
                                  values: UnsafeBufferPointer(start: idPointer, count: 1))
                }
            }
        }
        // tiktoken merges two adjacent parts whenever their concatenated bytes are a token, with
        // that token's id as the rank, so every split of every token into two tokens is a pair.
        var pairs = PairRankTable(minimumCapacity: 1 << 19)
        tokenBytes.withUnsafeBufferPointer { all in
            for id in 0..<ordinaryCount {
                let start = tokenOffsets[id], end = tokenOffsets[id + 1]
                guard end - start >= 2 else { continue }
                for split in (start + 1)..<end {
                    guard let left = tokens.singleValue(for: UnsafeBufferPointer(rebasing: all[start..<split])),
                          let right = tokens.singleValue(for: UnsafeBufferPointer(rebasing: all[split..<end]))
                    else { continue }
                    pairs.insert(left, right, rank: Int32(id))
                }
            }
        }
        return Vocabulary(tokenBytes: tokenBytes, tokenOffsets: tokenOffsets, byteToID: byteToID,
                          pairRanks: pairs, tokens: tokens)
    }

    static func readFile(_ url: URL, name: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw PipelineError("the GPT-2 vocabulary file \(name) is missing", location: url.path,
                                hint: "download it with \(fetchCommand), or pass the directory that holds encoder.json and vocab.bpe")
        }
        guard !isDirectory.boolValue else {
            throw PipelineError("expected the GPT-2 vocabulary file \(name) but found a directory", location: url.path,
                                hint: "pass the directory that holds encoder.json and vocab.bpe")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw PipelineError("cannot read \(name): \(error.localizedDescription)", location: url.path)
        }
        guard !data.isEmpty else { throw corrupt(name, url.path, "the file is empty") }
        return data
    }

    static func corrupt(_ name: String, _ path: String, _ problem: String) -> PipelineError {
        PipelineError("\(name) is damaged: \(problem)", location: path,
                      hint: "download it again with \(fetchCommand); encoder.json and vocab.bpe must come from the same GPT-2 release")
    }

    /// The bytes of every token id (the flat buffer and its offsets), from `encoder.json`.
    static func parseEncoder(_ data: Data, path: String) throws -> ([UInt8], [Int]) {
        let name = "encoder.json"
        let entries: [String: Int]
        do {
            entries = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw corrupt(name, path, "not a JSON object mapping token strings to integer ids (\(describe(error)))")
        }
        let expected = GPT2BPETokenizer.expectedVocabularySize
        guard entries.count == expected else {
            throw corrupt(name, path, "it has \(entries.count) tokens, GPT-2's has \(expected)")
        }
        guard entries[GPT2BPETokenizer.endOfText] == GPT2BPETokenizer.endOfTextID else {
            throw corrupt(name, path, "\(GPT2BPETokenizer.endOfText) must have id \(GPT2BPETokenizer.endOfTextID)")
        }
        var bytesByID = [[UInt8]?](repeating: nil, count: expected)
        for (token, id) in entries {
            guard id >= 0 && id < expected else {
                throw corrupt(name, path, "token \(quoted(token)) has id \(id), outside 0..<\(expected)")
            }
            guard bytesByID[id] == nil else {
                throw corrupt(name, path, "id \(id) is used by more than one token (one is \(quoted(token)))")
            }
            if token == GPT2BPETokenizer.endOfText {
                bytesByID[id] = Array(token.utf8)
                continue
            }
            var bytes = [UInt8]()
            for scalar in token.unicodeScalars {
                let value = Int(scalar.value)
                guard value < ByteLevel.byteForScalar.count, ByteLevel.byteForScalar[value] >= 0 else {
                    throw corrupt(name, path, "token \(quoted(token)) (id \(id)) contains U+\(String(value, radix: 16, uppercase: true)), "
                                  + "which is not one of GPT-2's 256 byte characters")
                }
                bytes.append(UInt8(ByteLevel.byteForScalar[value]))
            }
            guard !bytes.isEmpty else { throw corrupt(name, path, "id \(id) has an empty token") }
            bytesByID[id] = bytes
        }
        // The first 256 ids must be the single bytes in the byte-level table's order (tiktoken checks this too).
        for (rank, byte) in ByteLevel.bytesInRankOrder.enumerated() where bytesByID[rank] != [byte] {
            throw corrupt(name, path, "id \(rank) should be the single byte 0x\(String(byte, radix: 16)) "
                          + "(character \(quoted(String(Character(Unicode.Scalar(ByteLevel.scalarForByte[Int(byte)])!)))))")
        }
        var flat = [UInt8]()
        var offsets = [0]
        for bytes in bytesByID {
            flat.append(contentsOf: bytes!)   // all present: 50257 distinct ids in range
            offsets.append(flat.count)
        }
        return (flat, offsets)
    }

    /// Checks that merge i of `vocab.bpe` makes token 256 + i of `encoder.json`: tiktoken takes a
    /// token's id as its merge rank, which is only right when the two files agree.
    static func checkMerges(_ data: Data, path: String, tokenBytes: [UInt8], tokenOffsets: [Int]) throws {
        let name = "vocab.bpe"
        guard let text = String(data: data, encoding: .utf8) else { throw corrupt(name, path, "it is not UTF-8 text") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let header = lines.first, header.hasPrefix("#version") else {
            throw corrupt(name, path, "line 1 should be the \"#version: 0.2\" header")
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        let expectedMerges = GPT2BPETokenizer.endOfTextID - 256
        guard lines.count - 1 == expectedMerges else {
            throw corrupt(name, path, "it has \(lines.count - 1) merges, GPT-2's has \(expectedMerges)")
        }
        for index in 1..<lines.count {
            let lineNumber = index + 1
            let fields = lines[index].split(whereSeparator: { $0.isWhitespace })
            guard fields.count == 2 else {
                throw corrupt(name, path, "line \(lineNumber): expected two tokens separated by a space, found \(quoted(String(lines[index])))")
            }
            var merged = [UInt8]()
            for field in fields {
                for scalar in field.unicodeScalars {
                    let value = Int(scalar.value)
                    guard value < ByteLevel.byteForScalar.count, ByteLevel.byteForScalar[value] >= 0 else {
                        throw corrupt(name, path, "line \(lineNumber): \(quoted(String(field))) contains U+\(String(value, radix: 16, uppercase: true)), "
                                      + "which is not one of GPT-2's 256 byte characters")
                    }
                    merged.append(UInt8(ByteLevel.byteForScalar[value]))
                }
            }
            let id = 256 + index - 1
            guard tokenBytes[tokenOffsets[id]..<tokenOffsets[id + 1]].elementsEqual(merged) else {
                throw corrupt(name, path, "line \(lineNumber): merge \(quoted(String(lines[index]))) should make token id \(id) of encoder.json, "
                              + "but that id is a different token; the two files do not belong together")
            }
        }
    }

    private static func quoted(_ text: String) -> String {
        let shown = text.count > 40 ? String(text.prefix(40)) + "..." : text
        return "\"" + shown.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }

    private static func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            let underlying = (context.underlyingError as NSError?)?.localizedDescription
            return underlying.map { "\(context.debugDescription) \($0)" } ?? context.debugDescription
        }
        if case DecodingError.typeMismatch(_, let context) = error {
            let key = context.codingPath.last?.stringValue ?? "?"
            return "the value for \(quoted(key)) is not an integer"
        }
        return "\(error)"
    }
}

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
        var pairs = PairRankTable(minimumCapacity: 1 << 17)   // GPT-2 has 108,299 pairs
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
        let data = try Data.reading(url, what: name)
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
        let expected = GPT2BPETokenizer.expectedVocabularySize
        let endOfTextScalars = GPT2BPETokenizer.endOfText.unicodeScalars.map(\.value)
        var bytesByID = [[UInt8]?](repeating: nil, count: expected)
        var entries = 0
        do {
            try data.withUnsafeBytes { raw in
                var scanner = EncoderJSONScanner(raw.bindMemory(to: UInt8.self))
                try scanner.scan { key, id, offset in
                    entries += 1
                    var token: String { String(String.UnicodeScalarView(key.compactMap(Unicode.Scalar.init))) }
                    guard id < expected else {
                        throw corrupt(name, path, "token \(quoted(token)) has id \(id), outside 0..<\(expected)")
                    }
                    guard bytesByID[id] == nil else {
                        throw corrupt(name, path, "id \(id) is used by more than one token (one is \(quoted(token)))")
                    }
                    if key == endOfTextScalars {
                        guard id == GPT2BPETokenizer.endOfTextID else {
                            throw corrupt(name, path, "\(GPT2BPETokenizer.endOfText) must have id \(GPT2BPETokenizer.endOfTextID), not \(id)")
                        }
                        bytesByID[id] = Array(GPT2BPETokenizer.endOfText.utf8)
                        return
                    }
                    var bytes = [UInt8]()
                    bytes.reserveCapacity(key.count)
                    for scalar in key where !appendByteLevel(scalar, to: &bytes) {
                        throw corrupt(name, path, "token \(quoted(token)) (id \(id)) contains U+\(String(scalar, radix: 16, uppercase: true)), "
                                      + "which is not one of GPT-2's 256 byte characters")
                    }
                    guard !bytes.isEmpty else { throw corrupt(name, path, "id \(id) has an empty token") }
                    bytesByID[id] = bytes
                }
            }
        } catch let error as ScanError {
            throw corrupt(name, path, "not a JSON object mapping token strings to integer ids "
                          + "(at byte \(error.offset): \(error.problem))")
        }
        guard entries == expected else {
            throw corrupt(name, path, "it has \(entries) tokens, GPT-2's has \(expected)")
        }
        guard bytesByID[GPT2BPETokenizer.endOfTextID] == Array(GPT2BPETokenizer.endOfText.utf8) else {
            throw corrupt(name, path, "\(GPT2BPETokenizer.endOfText) must have id \(GPT2BPETokenizer.endOfTextID)")
        }
        // The first 256 ids must be the single bytes in the byte-level table's order (tiktoken checks this too).
        for (rank, byte) in ByteLevel.bytesInRankOrder.enumerated() where bytesByID[rank] != [byte] {
            throw corrupt(name, path, "id \(rank) should be the single byte 0x\(String(byte, radix: 16)) "
                          + "(character \(quoted(String(Character(Unicode.Scalar(ByteLevel.scalarForByte[Int(byte)])!)))))")
        }
        var flat = [UInt8]()
        flat.reserveCapacity(data.count / 2)
        var offsets = [0]
        offsets.reserveCapacity(expected + 1)
        for bytes in bytesByID {
            flat.append(contentsOf: bytes!)   // all present: `expected` distinct ids in range
            offsets.append(flat.count)
        }
        return (flat, offsets)
    }

    /// Checks that merge i of `vocab.bpe` makes token 256 + i of `encoder.json`: tiktoken takes a
    /// token's id as its merge rank, which is only right when the two files agree.
    static func checkMerges(_ data: Data, path: String, tokenBytes: [UInt8], tokenOffsets: [Int]) throws {
        let name = "vocab.bpe"
        let expectedMerges = GPT2BPETokenizer.endOfTextID - 256
        try data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            guard let header = lines.first, header.starts(with: "#version".utf8) else {
                throw corrupt(name, path, "line 1 should be the \"#version: 0.2\" header")
            }
            if lines.last?.isEmpty == true { lines.removeLast() }
            guard lines.count - 1 == expectedMerges else {
                throw corrupt(name, path, "it has \(lines.count - 1) merges, GPT-2's has \(expectedMerges)")
            }
            var merged = [UInt8]()
            for index in 1..<lines.count {
                let lineNumber = index + 1
                let line = UnsafeBufferPointer(rebasing: lines[index])
                var shown: String { quoted(String(decoding: line, as: UTF8.self)) }
                // tiktoken splits on any whitespace; the byte-level alphabet has none, so "\r" is the only other one to expect.
                let fields = line.split(whereSeparator: { $0 == 0x20 || $0 == 0x0D || $0 == 0x09 })
                guard fields.count == 2 else {
                    throw corrupt(name, path, "line \(lineNumber): expected two tokens separated by a space, found \(shown)")
                }
                merged.removeAll(keepingCapacity: true)
                for field in fields {
                    let fieldBytes = UnsafeBufferPointer(rebasing: field)
                    var position = 0
                    while position < fieldBytes.count {
                        guard let (scalar, length) = decodeUTF8(fieldBytes, at: position), appendByteLevel(scalar, to: &merged) else {
                            throw corrupt(name, path, "line \(lineNumber): \(shown) is not made of GPT-2's 256 byte characters")
                        }
                        position += length
                    }
                }
                let id = 256 + index - 1
                guard tokenBytes[tokenOffsets[id]..<tokenOffsets[id + 1]].elementsEqual(merged) else {
                    throw corrupt(name, path, "line \(lineNumber): merge \(shown) should make token id \(id) of encoder.json, "
                                  + "but that id is a different token; the two files do not belong together")
                }
            }
        }
    }

    private static func quoted(_ text: String) -> String {
        let shown = text.count > 40 ? String(text.prefix(40)) + "..." : text
        return "\"" + shown.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }
}

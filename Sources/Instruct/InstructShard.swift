import ArtifactKit
import Foundation

/// A split of tokenized instruction data: variable-length rows of GPT-2 token IDs, each with the
/// token index where its response starts (the number of prompt tokens).
///
/// File layout (`train.bin`, `validation.bin`, `test.bin`; all little-endian):
///
///     magic "LLMFTINS" (8 bytes), version u32 = 1
///     rowCount u64, totalTokens u64
///     offsets u64[rowCount + 1]     row r is tokens[offsets[r] ..< offsets[r+1]]; offsets[0] = 0,
///                                   non-decreasing, offsets[rowCount] = totalTokens
///     tokens u16[totalTokens]
///     responseStart u32[rowCount]   0 <= responseStart[r] <= length of row r
///
/// The file size must be exactly what these counts imply.
public struct InstructionShard: Equatable, Sendable {
    public static let header = ArtifactHeader(magic: "LLMFTINS", version: 1)
    /// The command to name when a shard is missing or damaged.
    public static let producer = "pipeline run -f pipelines/instruct.yaml prepare` or `prepare instruct"

    /// Row boundaries into `tokenStorage`, `rowCount + 1` values.
    public private(set) var offsets: [Int]
    public private(set) var tokenStorage: [UInt16]
    public private(set) var responseStarts: [Int]

    public var rowCount: Int { offsets.count - 1 }
    public var totalTokens: Int { tokenStorage.count }

    /// Builds a shard from token rows and, per row, the number of prompt tokens.
    /// Throws if a token does not fit in 16 bits or a response start lies outside its row.
    public init(rows: [[Int]], responseStarts: [Int]) throws {
        guard rows.count == responseStarts.count else {
            throw PipelineError("\(rows.count) rows but \(responseStarts.count) response starts")
        }
        var offsets = [0]
        offsets.reserveCapacity(rows.count + 1)
        var storage: [UInt16] = []
        storage.reserveCapacity(rows.reduce(0) { $0 + $1.count })
        for (r, row) in rows.enumerated() {
            for token in row {
                guard let t = UInt16(exactly: token) else {
                    throw PipelineError("row \(r): token id \(token) does not fit the shard's 16-bit token field")
                }
                storage.append(t)
            }
            guard (0...row.count).contains(responseStarts[r]) else {
                throw PipelineError("row \(r): response start \(responseStarts[r]) outside the row's \(row.count) tokens")
            }
            offsets.append(storage.count)
        }
        self.offsets = offsets
        self.tokenStorage = storage
        self.responseStarts = responseStarts
    }

    /// The tokens of `row` (prompt and response).
    public func tokens(row: Int) -> ArraySlice<UInt16> {
        tokenStorage[offsets[row]..<offsets[row + 1]]
    }

    /// The tokens of `row` as `Int`s, the form `collateInstructionBatch` takes.
    public func row(_ row: Int) -> [Int] {
        tokens(row: row).map(Int.init)
    }

    /// Index within the row of the first response token (= number of prompt tokens).
    public func responseStart(row: Int) -> Int {
        responseStarts[row]
    }

    public func length(row: Int) -> Int {
        offsets[row + 1] - offsets[row]
    }

    /// The exact byte size of a shard file with these counts.
    public static func fileSize(rows: Int, tokens: Int) -> Int {
        12 + 16 + 8 * (rows + 1) + 2 * tokens + 4 * rows
    }

    public func encoded() -> Data {
        var w = BinaryWriter()
        Self.header.write(to: &w)
        w.u64(UInt64(rowCount))
        w.u64(UInt64(totalTokens))
        w.array(offsets.map { UInt64($0).littleEndian })
        w.array(tokenStorage.map { $0.littleEndian })
        w.array(responseStarts.map { UInt32($0).littleEndian })
        return w.data
    }

    /// Writes the shard atomically (a reader never sees half a file).
    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }

    public static func read(from url: URL) throws -> InstructionShard {
        let data = try Data.reading(url, what: "the instruction shard", missingHint: "run `\(producer)` to write it")
        return try decode(data, source: url.path)
    }

    /// Parses and checks a shard: magic, version, exact size, offsets and response starts.
    public static func decode(_ data: Data, source: String) throws -> InstructionShard {
        let hint = "rerun `\(producer)` to rewrite it"
        func damaged(_ message: String) -> PipelineError {
            PipelineError(message, location: source, hint: hint)
        }
        var r = BinaryReader(data: data, source: source)
        do {
            try header.check(&r, producer: producer)
        } catch var error as PipelineError {
            // A short file fails inside the header check with a generic "truncated"; add the hint.
            if error.hint == nil { error.hint = hint }
            throw error
        }
        guard r.remaining >= 16 else { throw damaged("file is truncated: \(data.count) bytes is too short for the row and token counts") }
        let rows64 = try r.u64()
        let tokens64 = try r.u64()
        // Bound the counts by the file size before any arithmetic, so a corrupt count cannot overflow.
        guard rows64 < UInt64(data.count), tokens64 < UInt64(data.count) else {
            throw damaged("implausible counts (rows \(rows64), tokens \(tokens64)) for a file of \(data.count) bytes")
        }
        let rows = Int(rows64), tokens = Int(tokens64)
        let expected = fileSize(rows: rows, tokens: tokens)
        guard data.count == expected else {
            throw damaged("size is \(data.count) bytes, but \(rows) rows and \(tokens) tokens need exactly \(expected) bytes")
        }
        let rawOffsets = try r.array(UInt64.self, count: rows + 1).map { UInt64(littleEndian: $0) }
        let storage = try r.array(UInt16.self, count: tokens).map { UInt16(littleEndian: $0) }
        let rawStarts = try r.array(UInt32.self, count: rows).map { UInt32(littleEndian: $0) }
        guard rawOffsets.first == 0 else { throw damaged("offsets must start at 0, found \(rawOffsets[0])") }
        guard rawOffsets.last == tokens64 else {
            throw damaged("the last offset is \(rawOffsets[rows]), but the file holds \(tokens) tokens")
        }
        for i in 0..<rows where rawOffsets[i + 1] < rawOffsets[i] {
            throw damaged("offsets decrease at row \(i): \(rawOffsets[i]) then \(rawOffsets[i + 1])")
        }
        let offsets = rawOffsets.map { Int($0) }
        var starts: [Int] = []
        starts.reserveCapacity(rows)
        for i in 0..<rows {
            let start = Int(rawStarts[i])
            guard start <= offsets[i + 1] - offsets[i] else {
                throw damaged("row \(i): response start \(start) is beyond the row's \(offsets[i + 1] - offsets[i]) tokens")
            }
            starts.append(start)
        }
        return InstructionShard(offsets: offsets, tokenStorage: storage, responseStarts: starts)
    }

    private init(offsets: [Int], tokenStorage: [UInt16], responseStarts: [Int]) {
        self.offsets = offsets
        self.tokenStorage = tokenStorage
        self.responseStarts = responseStarts
    }
}

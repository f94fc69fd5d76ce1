import ArtifactKit
import Foundation

/// A split of tokenized instruction data: variable-length rows of GPT-2 token IDs, each with the
/// spans of its response tokens (what the loss covers with `mask_instructions`).
///
/// File layout (`train.bin`, `validation.bin`, `test.bin`; all little-endian):
///
///     magic "LLMFTINS" (8 bytes), version u32 (1 or 2)
///     rowCount u64, totalTokens u64
///     version 2 only: spanCount u64
///     offsets u64[rowCount + 1]     row r is tokens[offsets[r] ..< offsets[r+1]]; offsets[0] = 0,
///                                   non-decreasing, offsets[rowCount] = totalTokens
///     tokens u16[totalTokens]
///     version 1: responseStart u32[rowCount]   one response from responseStart[r] to the row's end
///     version 2: spanOffsets u64[rowCount + 1] row r's spans are spans[spanOffsets[r] ..< spanOffsets[r+1]]
///                spans (start u32, end u32)[spanCount]   within the row, non-empty, increasing, disjoint
///
/// A shard is written as version 1 whenever every row has at most one response and it runs to
/// the row's end (Alpaca and prompt-completion data, single-turn chats), so such files are the
/// bytes they were before version 2; multi-turn chats need version 2. Both are read.
/// The file size must be exactly what the counts imply.
public struct InstructionShard: Equatable, Sendable {
    public static let magic = "LLMFTINS"
    /// The newest version (the one this code introduced); `supportedVersions` are read.
    public static let header = ArtifactHeader(magic: magic, version: 2)
    public static let supportedVersions: ClosedRange<UInt32> = 1...2
    /// The command to name when a shard is missing or damaged.
    public static let producer = "pipeline run -f pipelines/instruct.yaml prepare` or `prepare instruct"

    /// Row boundaries into `tokenStorage`, `rowCount + 1` values.
    public private(set) var offsets: [Int]
    public private(set) var tokenStorage: [UInt16]
    /// Per row, the token ranges (within the row) of its responses.
    public private(set) var responseSpans: [[Range<Int>]]

    public var rowCount: Int { offsets.count - 1 }
    public var totalTokens: Int { tokenStorage.count }

    /// Builds a shard from token rows and, per row, its response spans (empty spans are dropped).
    /// Throws if a token does not fit in 16 bits or the spans are not increasing, disjoint ranges
    /// within the row.
    public init(rows: [[Int]], responseSpans: [[Range<Int>]]) throws {
        guard rows.count == responseSpans.count else {
            throw PipelineError("\(rows.count) rows but \(responseSpans.count) lists of response spans")
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
            if let problem = Self.spanProblem(responseSpans[r].filter { !$0.isEmpty }, rowLength: row.count) {
                throw PipelineError("row \(r): \(problem)")
            }
            offsets.append(storage.count)
        }
        self.init(offsets: offsets, tokenStorage: storage, responseSpans: responseSpans.map { $0.filter { !$0.isEmpty } })
    }

    /// One response per row, from `responseStarts[r]` (the number of prompt tokens) to the row's end.
    public init(rows: [[Int]], responseStarts: [Int]) throws {
        guard rows.count == responseStarts.count else {
            throw PipelineError("\(rows.count) rows but \(responseStarts.count) response starts")
        }
        for (r, start) in responseStarts.enumerated() where !(0...rows[r].count).contains(start) {
            throw PipelineError("row \(r): response start \(start) outside the row's \(rows[r].count) tokens")
        }
        try self.init(rows: rows, responseSpans: zip(rows, responseStarts).map { [$1..<$0.count] })
    }

    /// Why spans are not increasing, disjoint, non-empty ranges within a row of `rowLength` (nil: they are).
    static func spanProblem(_ spans: [Range<Int>], rowLength: Int) -> String? {
        var end = 0
        for span in spans {
            if span.isEmpty || span.lowerBound < end || span.upperBound > rowLength {
                return "response span \(span.lowerBound)..<\(span.upperBound) is empty, overlaps the one before or lies beyond the row's \(rowLength) tokens"
            }
            end = span.upperBound
        }
        return nil
    }

    /// The tokens of `row` (prompt and response).
    public func tokens(row: Int) -> ArraySlice<UInt16> {
        tokenStorage[offsets[row]..<offsets[row + 1]]
    }

    /// The tokens of `row` as `Int`s, the form `collateInstructionBatch` takes.
    public func row(_ row: Int) -> [Int] {
        tokens(row: row).map(Int.init)
    }

    /// The token ranges of `row`'s responses.
    public func responseSpans(row: Int) -> [Range<Int>] {
        responseSpans[row]
    }

    /// Index within the row of the first response token (the number of tokens before it; the
    /// row's length when it has no response tokens).
    public func responseStart(row: Int) -> Int {
        responseSpans[row].first?.lowerBound ?? length(row: row)
    }

    public func length(row: Int) -> Int {
        offsets[row + 1] - offsets[row]
    }

    /// 1 when every row has at most one response, running to the row's end; else 2.
    public var formatVersion: UInt32 {
        (0..<rowCount).allSatisfy { r in responseSpans[r].count <= 1 && (responseSpans[r].first?.upperBound ?? length(row: r)) == length(row: r) } ? 1 : 2
    }

    /// The exact byte size of a shard file with these counts.
    public static func fileSize(version: UInt32 = 1, rows: Int, tokens: Int, spans: Int = 0) -> Int {
        let common = 12 + 16 + 8 * (rows + 1) + 2 * tokens
        return version == 1 ? common + 4 * rows : common + 8 + 8 * (rows + 1) + 8 * spans
    }

    public func encoded() -> Data {
        let version = formatVersion
        var w = BinaryWriter()
        ArtifactHeader(magic: Self.magic, version: version).write(to: &w)
        w.u64(UInt64(rowCount))
        w.u64(UInt64(totalTokens))
        let spans = responseSpans.joined()
        if version == 2 { w.u64(UInt64(spans.count)) }
        w.array(offsets.map { UInt64($0).littleEndian })
        w.array(tokenStorage.map { $0.littleEndian })
        if version == 1 {
            w.array((0..<rowCount).map { UInt32(responseStart(row: $0)).littleEndian })
        } else {
            var spanOffsets = [UInt64(0)]
            for row in responseSpans { spanOffsets.append(spanOffsets.last! + UInt64(row.count)) }
            w.array(spanOffsets.map(\.littleEndian))
            w.array(spans.flatMap { [UInt32($0.lowerBound).littleEndian, UInt32($0.upperBound).littleEndian] })
        }
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

    private init(offsets: [Int], tokenStorage: [UInt16], responseSpans: [[Range<Int>]]) {
        self.offsets = offsets
        self.tokenStorage = tokenStorage
        self.responseSpans = responseSpans
    }
}

extension InstructionShard {
    /// Parses and checks a shard of either version: magic, version, exact size, offsets and spans.
    public static func decode(_ data: Data, source: String) throws -> InstructionShard {
        let hint = "rerun `\(producer)` to rewrite it"
        func damaged(_ message: String) -> PipelineError {
            PipelineError(message, location: source, hint: hint)
        }
        var r = BinaryReader(data: data, source: source)
        let version = try readHeader(&r, hint: hint)
        let countBytes = version == 1 ? 16 : 24
        guard r.remaining >= countBytes else { throw damaged("file is truncated: \(data.count) bytes is too short for the row and token counts") }
        let rows64 = try r.u64(), tokens64 = try r.u64(), spans64 = version == 1 ? 0 : try r.u64()
        // Bound the counts by the file size before any arithmetic, so a corrupt count cannot overflow.
        guard rows64 < UInt64(data.count), tokens64 < UInt64(data.count), spans64 < UInt64(data.count) else {
            throw damaged("implausible counts (rows \(rows64), tokens \(tokens64), spans \(spans64)) for a file of \(data.count) bytes")
        }
        let rows = Int(rows64), tokens = Int(tokens64), spanCount = Int(spans64)
        let expected = fileSize(version: version, rows: rows, tokens: tokens, spans: spanCount)
        guard data.count == expected else {
            throw damaged("size is \(data.count) bytes, but \(rows) rows and \(tokens) tokens\(version == 2 ? " and \(spanCount) spans" : "") need exactly \(expected) bytes")
        }
        let offsets = try checkedOffsets(try r.array(UInt64.self, count: rows + 1), total: tokens, of: "tokens", damaged)
        let storage = try r.array(UInt16.self, count: tokens).map { UInt16(littleEndian: $0) }
        let lengths = (0..<rows).map { offsets[$0 + 1] - offsets[$0] }
        let spans: [[Range<Int>]]
        if version == 1 {
            let starts = try r.array(UInt32.self, count: rows).map { Int(UInt32(littleEndian: $0)) }
            for i in 0..<rows where starts[i] > lengths[i] {
                throw damaged("row \(i): response start \(starts[i]) is beyond the row's \(lengths[i]) tokens")
            }
            spans = (0..<rows).map { starts[$0] < lengths[$0] ? [starts[$0]..<lengths[$0]] : [] }
        } else {
            let spanOffsets = try checkedOffsets(try r.array(UInt64.self, count: rows + 1), total: spanCount, of: "spans", damaged)
            let bounds = try r.array(UInt32.self, count: 2 * spanCount).map { Int(UInt32(littleEndian: $0)) }
            spans = try (0..<rows).map { i in
                let row = (spanOffsets[i]..<spanOffsets[i + 1]).map { bounds[2 * $0]..<max(bounds[2 * $0], bounds[2 * $0 + 1]) }
                if let problem = spanProblem(row, rowLength: lengths[i]) { throw damaged("row \(i): \(problem)") }
                return row
            }
        }
        return InstructionShard(offsets: offsets, tokenStorage: storage, responseSpans: spans)
    }

    /// Checks the magic and returns the version, which must be one this code reads.
    static func readHeader(_ r: inout BinaryReader, hint: String) throws -> UInt32 {
        var probe = r
        do {
            _ = try probe.bytes(8)
            let version = try probe.u32()
            try ArtifactHeader(magic: magic, version: version).check(&r, producer: producer)
            guard supportedVersions.contains(version) else {
                throw PipelineError("format version \(version), but this tool reads versions \(supportedVersions.lowerBound) and \(supportedVersions.upperBound)",
                                    location: r.source, hint: "rerun `\(producer)` with this version of the tools")
            }
            return version
        } catch var error as PipelineError {
            // A short file fails inside the header check with a generic "truncated"; add the hint.
            if error.hint == nil { error.hint = hint }
            throw error
        }
    }

    /// Offsets that start at 0, never decrease and end at `total` (`unit`: what they count).
    static func checkedOffsets(_ raw: [UInt64], total: Int, of unit: String, _ damaged: (String) -> PipelineError) throws -> [Int] {
        let values = raw.map { UInt64(littleEndian: $0) }
        let what = unit == "tokens" ? "offset" : "span offset"
        guard values.first == 0 else { throw damaged("\(what)s must start at 0, found \(values[0])") }
        guard values.last == UInt64(total) else {
            throw damaged("the last \(what) is \(values.last!), but the file holds \(total) \(unit)")
        }
        for i in 0..<(values.count - 1) where values[i + 1] < values[i] {
            throw damaged("\(what)s decrease at row \(i): \(values[i]) then \(values[i + 1])")
        }
        return values.map { Int($0) }
    }
}

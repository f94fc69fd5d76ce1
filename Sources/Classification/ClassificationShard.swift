import ArtifactKit
import Foundation

/// The file format of a tokenized classification split (`train.bin`, `validation.bin`, `test.bin`):
/// a codec over `LabeledRows`, every text padded or truncated to one sequence length, with its
/// class label and real length. Token ids are stored in 16 bits, so `encode` refuses ids above 65535.
///
/// File layout (little-endian), version 1:
///
///     offset  size            field
///     0       8               magic "LLMFTCLS"
///     8       4   u32         format version (1)
///     12      8   u64         row count R
///     20      4   u32         sequence length L
///     24      4   u32         pad token id
///     28      4   u32         number of classes
///     32      4   u32         reserved, 0
///     36      2*R*L  u16      tokens, row-major [R x L], padded with the pad token id
///     ...     4*R    i32      labels, 0 ..< number of classes
///     ...     4*R    i32      real (unpadded, after truncation) token counts, 0 ... L
///
/// Readers check the magic, the version and that the file is exactly as long as the header says.
public enum ClassificationShard {
    public static let header = ArtifactHeader(magic: "LLMFTCLS", version: 1)
    public static let headerSize = 36
    /// What to run when a shard is missing, stale or damaged.
    public static let rerunHint = "rerun `pipeline run prepare` (or `prepare classification ...`) to rewrite it"

    public static func expectedFileSize(rows: Int, sequenceLength: Int) -> Int {
        headerSize + rows * sequenceLength * 2 + rows * 4 * 2
    }

    /// The file bytes of `rows`; throws when a token id or the pad id does not fit 16 bits.
    public static func encode(_ rows: LabeledRows) throws -> Data {
        let limit = Int32(UInt16.max)
        if let bad = rows.tokens.firstIndex(where: { $0 < 0 || $0 > limit }) {
            throw PipelineError("token id \(rows.tokens[bad]) in row \(bad / max(rows.sequenceLength, 1)) does not fit the shard's 16-bit tokens (0...65535)",
                                location: "classification shard",
                                hint: "use a tokenizer whose vocabulary has at most 65536 entries")
        }
        guard (0...Int(limit)).contains(rows.padTokenID) else {
            throw PipelineError("pad token id \(rows.padTokenID) does not fit the shard's 16-bit tokens (0...65535)",
                                location: "classification shard", hint: "pass a --pad-token-id inside the vocabulary")
        }
        var w = BinaryWriter()
        header.write(to: &w)
        w.u64(UInt64(rows.rowCount))
        w.u32(UInt32(rows.sequenceLength))
        w.u32(UInt32(rows.padTokenID))
        w.u32(UInt32(rows.numClasses))
        w.u32(0)
        w.array(rows.tokens.map { UInt16($0) })
        w.array(rows.labels.map { Int32($0) })
        w.array(rows.lengths.map { Int32($0) })
        return w.data
    }

    /// Writes the shard atomically (temporary file, then rename).
    public static func write(_ rows: LabeledRows, to url: URL) throws {
        try AtomicFile.write(encode(rows), to: url)
    }

    public static func read(from url: URL) throws -> LabeledRows {
        let data = try Data.reading(url, what: "the token shard", missingHint: rerunHint)
        return try decode(data, source: url.path)
    }

    /// The header fields `decode` reads before the arrays.
    private struct Header {
        var rows: Int, sequenceLength: Int, padTokenID: Int, numClasses: Int
    }

    private static func failure(_ message: String, _ source: String) -> PipelineError {
        PipelineError(message, location: source, hint: rerunHint)
    }

    private static func readHeader(_ r: inout BinaryReader, size: Int, source: String) throws -> Header {
        guard size >= headerSize else {
            throw failure("file is \(size) bytes, shorter than the \(headerSize)-byte header of a classification shard", source)
        }
        do { try header.check(&r, producer: "pipeline run prepare") } catch var e as PipelineError {
            e.hint = rerunHint
            throw e
        }
        let rows64 = try r.u64()
        let sequenceLength = Int(try r.u32())
        let padTokenID = Int(try r.u32())
        let numClasses = Int(try r.u32())
        let reserved = try r.u32()
        guard reserved == 0 else { throw failure("reserved header field is \(reserved), expected 0", source) }
        // Bound the row count before multiplying so a garbled header cannot overflow.
        guard rows64 <= UInt64(size), sequenceLength <= size else {
            throw failure("header claims \(rows64) rows of \(sequenceLength) tokens, far more than the \(size)-byte file holds", source)
        }
        let rows = Int(rows64)
        let expected = expectedFileSize(rows: rows, sequenceLength: sequenceLength)
        guard size == expected else {
            throw failure("file is \(size) bytes, but its header (\(rows) rows x \(sequenceLength) tokens) requires exactly \(expected)", source)
        }
        guard numClasses >= 1 else { throw failure("header says \(numClasses) classes", source) }
        return Header(rows: rows, sequenceLength: sequenceLength, padTokenID: padTokenID, numClasses: numClasses)
    }

    public static func decode(_ data: Data, source: String) throws -> LabeledRows {
        var r = BinaryReader(data: data, source: source)
        let h = try readHeader(&r, size: data.count, source: source)
        // (BinaryReader.array needs a non-empty buffer, and an empty split is legal.)
        let tokens = h.rows * h.sequenceLength == 0 ? [] : try r.array(UInt16.self, count: h.rows * h.sequenceLength)
        let labels = h.rows == 0 ? [] : try r.array(Int32.self, count: h.rows)
        let lengths = h.rows == 0 ? [] : try r.array(Int32.self, count: h.rows)
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= h.numClasses }) {
            throw failure("row \(bad) has label \(labels[bad]), outside 0..<\(h.numClasses)", source)
        }
        if let bad = lengths.firstIndex(where: { $0 < 0 || Int($0) > h.sequenceLength }) {
            throw failure("row \(bad) has length \(lengths[bad]), outside 0...\(h.sequenceLength)", source)
        }
        return LabeledRows(tokens: tokens.map { Int32($0) }, labels: labels.map { Int($0) }, lengths: lengths.map { Int($0) },
                           sequenceLength: h.sequenceLength, padTokenID: h.padTokenID, numClasses: h.numClasses)
    }
}

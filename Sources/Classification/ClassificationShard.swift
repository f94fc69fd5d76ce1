import ArtifactKit
import Foundation

/// A tokenized classification split (`train.bin`, `validation.bin`, `test.bin`): every text
/// padded or truncated to one sequence length, with its class label and real length.
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
public struct ClassificationShard: Equatable {
    public static let header = ArtifactHeader(magic: "LLMFTCLS", version: 1)
    public static let headerSize = 36
    /// What to run when a shard is missing, stale or damaged.
    public static let rerunHint = "rerun `pipeline run prepare` (or `prepare classification ...`) to rewrite it"

    public var sequenceLength: Int
    public var padTokenID: Int
    public var numClasses: Int
    public var tokens: [UInt16]
    public var labels: [Int32]
    public var lengths: [Int32]
    public var rowCount: Int { labels.count }

    public init(sequenceLength: Int, padTokenID: Int, numClasses: Int, tokens: [UInt16], labels: [Int32], lengths: [Int32]) {
        precondition(tokens.count == labels.count * sequenceLength && lengths.count == labels.count)
        self.sequenceLength = sequenceLength
        self.padTokenID = padTokenID
        self.numClasses = numClasses
        self.tokens = tokens
        self.labels = labels
        self.lengths = lengths
    }

    /// The `sequenceLength` tokens of row `i` (padding included).
    public func row(_ i: Int) -> ArraySlice<UInt16> {
        tokens[(i * sequenceLength)..<((i + 1) * sequenceLength)]
    }

    public static func expectedFileSize(rows: Int, sequenceLength: Int) -> Int {
        headerSize + rows * sequenceLength * 2 + rows * 4 * 2
    }

    public func encoded() -> Data {
        var w = BinaryWriter()
        Self.header.write(to: &w)
        w.u64(UInt64(rowCount))
        w.u32(UInt32(sequenceLength))
        w.u32(UInt32(padTokenID))
        w.u32(UInt32(numClasses))
        w.u32(0)
        w.array(tokens)
        w.array(labels)
        w.array(lengths)
        return w.data
    }

    /// Writes the shard atomically (temporary file, then rename).
    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }

    public static func read(from url: URL) throws -> ClassificationShard {
        let data = try Data.reading(url, what: "the token shard", missingHint: rerunHint)
        return try decode(data, source: url.path)
    }

    public static func decode(_ data: Data, source: String) throws -> ClassificationShard {
        func fail(_ message: String) -> PipelineError { PipelineError(message, location: source, hint: rerunHint) }
        guard data.count >= headerSize else {
            throw fail("file is \(data.count) bytes, shorter than the \(headerSize)-byte header of a classification shard")
        }
        var r = BinaryReader(data: data, source: source)
        do { try header.check(&r, producer: "pipeline run prepare") } catch var e as PipelineError {
            e.hint = rerunHint
            throw e
        }
        let rows64 = try r.u64()
        let sequenceLength = Int(try r.u32())
        let padTokenID = Int(try r.u32())
        let numClasses = Int(try r.u32())
        let reserved = try r.u32()
        guard reserved == 0 else { throw fail("reserved header field is \(reserved), expected 0") }
        // Bound the row count before multiplying so a garbled header cannot overflow.
        guard rows64 <= UInt64(data.count), sequenceLength <= data.count else {
            throw fail("header claims \(rows64) rows of \(sequenceLength) tokens, far more than the \(data.count)-byte file holds")
        }
        let rows = Int(rows64)
        let expected = expectedFileSize(rows: rows, sequenceLength: sequenceLength)
        guard data.count == expected else {
            throw fail("file is \(data.count) bytes, but its header (\(rows) rows x \(sequenceLength) tokens) requires exactly \(expected)")
        }
        guard numClasses >= 1 else { throw fail("header says \(numClasses) classes") }
        // (BinaryReader.array needs a non-empty buffer, and an empty split is legal.)
        let tokens = rows * sequenceLength == 0 ? [] : try r.array(UInt16.self, count: rows * sequenceLength)
        let labels = rows == 0 ? [] : try r.array(Int32.self, count: rows)
        let lengths = rows == 0 ? [] : try r.array(Int32.self, count: rows)
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= numClasses }) {
            throw fail("row \(bad) has label \(labels[bad]), outside 0..<\(numClasses)")
        }
        if let bad = lengths.firstIndex(where: { $0 < 0 || Int($0) > sequenceLength }) {
            throw fail("row \(bad) has length \(lengths[bad]), outside 0...\(sequenceLength)")
        }
        return ClassificationShard(sequenceLength: sequenceLength, padTokenID: padTokenID, numClasses: numClasses,
                                   tokens: tokens, labels: labels, lengths: lengths)
    }
}

import ArtifactKit
import Foundation

/// `trunk.bin`, written by `train` beside its checkpoint: what the frozen layers produce for every
/// row of the train, validation and test shards, so `evaluate` does not run them again.
///
/// Layout (little-endian):
///
///     "LLMFTTRK" u32 version
///     u32 metaBytes, meta (JSON, `Meta`)
///     for each split in meta.splits: i32 x rows      positions stored per row
///     for each split, each row:      f32 x positions x embDim
///
/// `kind` "hidden": the hidden states entering block `block`, for the first `positions` positions of
/// each row (the positions the pooled output depends on; the rest are never read). `kind`
/// "pooled" (only the head trains): the pooled final vector of each row (positions 1).
/// The file size must equal what the header and the position counts say.
public struct TrunkStatesFile {
    public static let header = ArtifactHeader(magic: "LLMFTTRK", version: 1)
    public static let fileName = "trunk.bin"
    public static let producer = "train"

    public struct Split: Codable, Equatable, Sendable {
        public var name: String
        public var rows: Int
        public var sequenceLength: Int
        /// sha256 of the shard file the rows come from.
        public var shardSHA256: String

        public init(name: String, rows: Int, sequenceLength: Int, shardSHA256: String) {
            self.name = name
            self.rows = rows
            self.sequenceLength = sequenceLength
            self.shardSHA256 = shardSHA256
        }
    }

    public struct Meta: Codable, Equatable, Sendable {
        /// "hidden" or "pooled" (see the type's comment).
        public var kind: String
        /// The lowest trainable block: the states entering it are stored ("hidden").
        public var block: Int?
        public var embDim: Int
        public var model: String
        /// How the base weights were made: "random seed 123" or "<file> sha256 <hex>".
        public var base: String
        /// The states depend on the first `frozenParameters` floats of the parameter buffer
        /// (embeddings and blocks below `block`); their sha256 (raw little-endian bytes) must
        /// match the checkpoint's for the states to be reused.
        public var frozenParameters: Int
        public var frozenSHA256: String
        /// The pooling the stored positions were chosen for (canonical JSON of the checkpoint's settings).
        public var pooling: String
        public var splits: [Split]

        public init(kind: String, block: Int?, embDim: Int, model: String, base: String, frozenParameters: Int,
                    frozenSHA256: String, pooling: String, splits: [Split]) {
            self.kind = kind
            self.block = block
            self.embDim = embDim
            self.model = model
            self.base = base
            self.frozenParameters = frozenParameters
            self.frozenSHA256 = frozenSHA256
            self.pooling = pooling
            self.splits = splits
        }
    }

    /// Writes the file atomically. `positions[s][r]` is how many positions of row r of split s are
    /// stored; `rowValues(s, r)` gives that row's `positions * embDim` floats.
    public static func write(meta: Meta, positions: [[Int]], to url: URL,
                             rowValues: (Int, Int) -> UnsafeBufferPointer<Float>) throws {
        precondition(positions.count == meta.splits.count)
        var head = BinaryWriter()
        header.write(to: &head)
        let json = try JSONEncoder.sorted.encode(meta)
        head.u32(UInt32(json.count))
        head.bytes([UInt8](json))
        for (s, split) in meta.splits.enumerated() {
            precondition(positions[s].count == split.rows)
            head.array(positions[s].map { Int32($0) })
        }
        try AtomicFile.write(to: url) { tmp in
            guard FileManager.default.createFile(atPath: tmp.path, contents: head.data),
                  let handle = FileHandle(forWritingAtPath: tmp.path) else {
                throw PipelineError("cannot write the frozen-trunk states", location: tmp.path)
            }
            defer { try? handle.close() }
            try handle.seekToEnd()
            // Rows are gathered into ~16 MiB writes: one write per row would be thousands of small syscalls.
            var buffer = Data()
            buffer.reserveCapacity(1 << 24)
            for (s, counts) in positions.enumerated() {
                for r in counts.indices {
                    let values = rowValues(s, r)
                    precondition(values.count == counts[r] * meta.embDim)
                    if !values.isEmpty { buffer.append(values) }
                    if buffer.count >= 1 << 24 { try handle.write(contentsOf: buffer); buffer.removeAll(keepingCapacity: true) }
                }
            }
            if !buffer.isEmpty { try handle.write(contentsOf: buffer) }
        }
    }

    public let meta: Meta
    /// Positions stored per row, per split (in `meta.splits` order).
    public let positions: [[Int]]
    let data: Data
    /// Byte offset of each split's first value.
    let valueOffsets: [Int]
    public let source: String

    /// Maps the file and checks its header, its meta and its exact size. Values are read lazily.
    public static func open(_ url: URL) throws -> TrunkStatesFile {
        let hint = "rerun `train` to rewrite it (evaluate recomputes the states without it)"
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw PipelineError("cannot read the frozen-trunk states", location: url.path, hint: hint)
        }
        var r = BinaryReader(data: data, source: url.path)
        try header.check(&r, producer: producer)
        let metaBytes = Int(try r.u32())
        let meta: Meta
        do { meta = try JSONDecoder().decode(Meta.self, from: Data(try r.bytes(metaBytes))) } catch let e as PipelineError { throw e } catch {
            throw PipelineError("the header is not valid: \(error)", location: url.path, hint: hint)
        }
        guard meta.kind == "hidden" || meta.kind == "pooled", meta.embDim > 0 else {
            throw PipelineError("unknown kind \"\(meta.kind)\" or width \(meta.embDim)", location: url.path, hint: hint)
        }
        var positions: [[Int]] = []
        for split in meta.splits {
            guard split.rows >= 0 else { throw PipelineError("negative row count in split \(split.name)", location: url.path, hint: hint) }
            let counts = try r.array(Int32.self, count: split.rows).map(Int.init)
            guard counts.allSatisfy({ (0...max(split.sequenceLength, 1)).contains($0) }) else {
                throw PipelineError("split \(split.name) stores a row with more positions than its \(split.sequenceLength)",
                                    location: url.path, hint: hint)
            }
            positions.append(counts)
        }
        var offsets: [Int] = []
        var offset = r.offset
        for counts in positions {
            offsets.append(offset)
            offset += counts.reduce(0, +) * meta.embDim * 4
        }
        guard offset == data.count else {
            throw PipelineError("the file has \(data.count) bytes; its header describes \(offset) (truncated or damaged)",
                                location: url.path, hint: hint)
        }
        return TrunkStatesFile(meta: meta, positions: positions, data: data, valueOffsets: offsets, source: url.path)
    }

    /// Calls `body(row, values)` for each row of split `index`, `values` holding that row's
    /// `positions * embDim` floats.
    public func forEachRow(ofSplit index: Int, _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        let C = meta.embDim
        data.withUnsafeBytes { raw in
            var offset = valueOffsets[index]
            for (row, count) in positions[index].enumerated() {
                // The values start at a 4-byte multiple only when the header does; copy when not.
                let bytes = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count * C * 4)])
                if Int(bitPattern: bytes.baseAddress) % 4 == 0 {
                    body(row, bytes.bindMemory(to: Float.self))
                } else {
                    let copy = [Float](unsafeUninitializedCapacity: count * C) { buf, n in
                        memcpy(buf.baseAddress!, bytes.baseAddress!, bytes.count)
                        n = count * C
                    }
                    copy.withUnsafeBufferPointer { body(row, $0) }
                }
                offset += count * C * 4
            }
        }
    }

    public var fileSize: Int { data.count }
}

import ArtifactKit
import Foundation

/// A frozen base model with its Linear weights quantized, written once by `train
/// --quantize-base` and read back by later runs instead of the float32 weights.
///
/// Layout (little-endian):
///
///     "LLMFTQNT" u32 version
///     u32 metaBytes, meta (JSON, `Meta`)
///     for each entry of meta.tensors, in order, at its `offset` from the end of the meta:
///       float32:  f32 x count                                  (LayerNorms, biases, wpe)
///       nf4:      u8 x ceil(count/2) packed indices, u8 x blocks absmax codes,
///                 f32 x ceil(blocks/256) absmax2, f32 offset  (double-quantized scales)
///       int8:     i8 x count codes, f32 x rows row absmax
///
/// The file size must equal the end of the last tensor. Quantized tensors are [rows = out,
/// cols = in] (nn.Linear's layout); float32 ones keep the model's own shape.
public enum QuantizedBaseFile {
    public static let header = ArtifactHeader(magic: "LLMFTQNT", version: 1)
    public static let producer = "train --quantize-base"

    public struct Tensor: Codable, Equatable, Sendable {
        public var name: String
        /// "float32", "nf4" or "int8".
        public var storage: String
        public var shape: [Int]
        public var offset: Int
        public var bytes: Int
        /// Quantized tensors: the error of the dequantized values against the float32 ones.
        public var rmsError: Double?
        public var maxAbsError: Double?
        /// rmsError divided by the root mean square of the float32 values.
        public var relativeRMSError: Double?
    }

    public struct Meta: Codable, Equatable, Sendable {
        /// The model's config as JSON (opaque here: GPT2Weights writes and checks it).
        public var config: String
        /// The base weights' identity ("random seed 123", "<file> sha256 <hex>").
        public var base: String
        /// "nf4" or "int8": the type of the block projections.
        public var type: String
        public var tensors: [Tensor]
    }

    /// A tensor's payload in memory.
    public enum Payload {
        case float32([Float])
        case quantized(QuantizedMatrix)
    }
}

/// How far dequantized values are from the float32 originals.
public struct QuantizationErrorStats: Equatable, Sendable {
    public var rms: Double
    public var maxAbs: Double
    public var relativeRMS: Double

    /// Compares `m` with `original`, given in the same [rows, cols] layout.
    public init(_ m: QuantizedMatrix, original: UnsafeBufferPointer<Float>) {
        let linear = QuantizedLinear(m)
        var row = [Float](repeating: 0, count: m.cols)
        var squared = 0.0, reference = 0.0, worst = 0.0
        for r in 0..<m.rows {
            linear.dequantize(rows: r..<r + 1, into: &row)
            for c in 0..<m.cols {
                let x = Double(original[r * m.cols + c]), d = Double(row[c]) - x
                squared += d * d
                reference += x * x
                worst = max(worst, abs(d))
            }
        }
        let n = Double(max(1, m.rows * m.cols))
        rms = (squared / n).squareRoot()
        maxAbs = worst
        relativeRMS = reference > 0 ? (squared / reference).squareRoot() : 0
    }
}

extension QuantizedBaseFile {
    /// One tensor to write: its payload and, for quantized ones, the error stats.
    public struct Entry {
        public var name: String
        public var shape: [Int]
        public var payload: Payload
        public var error: QuantizationErrorStats?

        public init(name: String, shape: [Int], payload: Payload, error: QuantizationErrorStats? = nil) {
            self.name = name
            self.shape = shape
            self.payload = payload
            self.error = error
        }
    }

    static func bytes(of p: Payload) -> Int {
        switch p {
        case .float32(let v): return 4 * v.count
        case .quantized(let m): return m.byteCount
        }
    }

    static func storageName(_ p: Payload) -> String {
        if case .quantized(let m) = p { return m.type.rawValue }
        return "float32"
    }

    /// Writes the file atomically (through a temporary sibling renamed into place).
    public static func write(config: String, base: String, type: QuantizationType, entries: [Entry], to url: URL) throws {
        var offset = 0
        let tensors = entries.map { e -> Tensor in
            defer { offset += bytes(of: e.payload) }
            return Tensor(name: e.name, storage: storageName(e.payload), shape: e.shape, offset: offset, bytes: bytes(of: e.payload),
                          rmsError: e.error?.rms, maxAbsError: e.error?.maxAbs, relativeRMSError: e.error?.relativeRMS)
        }
        let meta = Meta(config: config, base: base, type: type.rawValue, tensors: tensors)
        var head = BinaryWriter()
        header.write(to: &head)
        let json = try JSONEncoder.sorted.encode(meta)
        head.u32(UInt32(json.count))
        head.bytes([UInt8](json))
        try AtomicFile.write(to: url) { tmp in
            FileManager.default.createFile(atPath: tmp.path, contents: head.data)
            let handle = try FileHandle(forWritingTo: tmp)
            defer { try? handle.close() }
            try handle.seekToEnd()
            for e in entries { try handle.write(contentsOf: payloadData(e.payload)) }
        }
    }

    static func payloadData(_ p: Payload) -> Data {
        var w = BinaryWriter()
        switch p {
        case .float32(let v): w.array(v)
        case .quantized(let m):
            switch m.storage {
            case .nf4(let packed, let s, _):
                w.array(packed); w.array(s.codes); w.array(s.absmax2); w.f32(s.offset)
            case .int8(let codes, let absmax):
                w.array(codes); w.array(absmax)
            }
        }
        return w.data
    }
}

extension QuantizedBaseFile {
    /// Reads only the header (magic, version, meta); the tensors stay on disk.
    public static func readMeta(_ url: URL) throws -> (meta: Meta, dataStart: Int, fileSize: Int) {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        var r = BinaryReader(data: data, source: url.path)
        try header.check(&r, producer: producer)
        let metaBytes = Int(try r.u32())
        let json = Data(try r.bytes(metaBytes))
        let meta: Meta
        do { meta = try JSONDecoder().decode(Meta.self, from: json) } catch {
            throw PipelineError("the quantized base's header is not valid JSON (\(error))", location: url.path,
                                hint: "delete it and rerun `\(producer)` to rewrite it")
        }
        return (meta, r.offset, data.count)
    }

    /// Reads the whole file, checking every tensor's size against its storage and shape and the
    /// file's size against the last tensor's end.
    public static func read(_ url: URL) throws -> (meta: Meta, tensors: [String: Payload]) {
        let (meta, start, size) = try readMeta(url)
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        let end = start + (meta.tensors.last.map { $0.offset + $0.bytes } ?? 0)
        guard end == size else {
            throw PipelineError("the quantized base is \(size) bytes, its header describes \(end)", location: url.path,
                                hint: "the file is truncated or corrupt: delete it and rerun `\(producer)`")
        }
        var tensors: [String: Payload] = [:]
        var r = BinaryReader(data: data, source: url.path)
        for t in meta.tensors {
            try r.seek(to: start + t.offset)
            tensors[t.name] = try payload(t, &r, location: url.path)
        }
        return (meta, tensors)
    }

    static func payload(_ t: Tensor, _ r: inout BinaryReader, location: String) throws -> Payload {
        let count = t.shape.reduce(1, *)
        let expected: Int
        let p: Payload
        switch t.storage {
        case "float32":
            expected = 4 * count
            p = .float32(try r.array(Float.self, count: count))
        case "nf4" where t.shape.count == 2:
            let blocks = (count + NF4.blockSize - 1) / NF4.blockSize, groups = (blocks + CompressedScales.blockSize - 1) / CompressedScales.blockSize
            expected = (count + 1) / 2 + blocks + 4 * groups + 4
            let packed = try r.array(UInt8.self, count: (count + 1) / 2), codes = try r.array(UInt8.self, count: blocks)
            let absmax2 = try r.array(Float.self, count: groups), offset = try r.f32()
            p = .quantized(QuantizedMatrix(rows: t.shape[0], cols: t.shape[1],
                                           storage: .nf4(packed: packed, scales: CompressedScales(codes: codes, absmax2: absmax2, offset: offset),
                                                         blockSize: NF4.blockSize)))
        case "int8" where t.shape.count == 2:
            expected = count + 4 * t.shape[0]
            let codes = try r.array(Int8.self, count: count), absmax = try r.array(Float.self, count: t.shape[0])
            p = .quantized(QuantizedMatrix(rows: t.shape[0], cols: t.shape[1], storage: .int8(codes: codes, rowAbsmax: absmax)))
        default:
            throw PipelineError("tensor \(t.name) has storage \"\(t.storage)\" with shape \(t.shape), which this version cannot read",
                                location: location, hint: "rerun `\(producer)` with this version of the tools")
        }
        guard expected == t.bytes else {
            throw PipelineError("tensor \(t.name) is recorded as \(t.bytes) bytes; its storage and shape need \(expected)",
                                location: location, hint: "delete the file and rerun `\(producer)`")
        }
        return p
    }
}

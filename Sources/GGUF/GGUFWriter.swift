import ArtifactKit
import Foundation

/// A tensor to write: its name, its dims in ggml order (ne[0], the contiguous one, first), its
/// type, and how to make its encoded bytes (see `TensorEncoding`). The bytes are made when the
/// file is written, one tensor at a time, so a large model is never held twice in encoded form.
public struct GGUFTensor {
    public var name: String
    public var dims: [Int]
    public var type: GGMLType
    private let encode: () -> Data

    /// Ready bytes (their count must be `type.byteCount(elements:)` of the dims).
    public init(name: String, dims: [Int], type: GGMLType, data: Data) {
        self.init(name: name, dims: dims, type: type, encode: { data })
        precondition(data.count == byteCount, "\(name): \(data.count) bytes for \(type) \(dims)")
    }

    /// `values()` (row-major over dims reversed, i.e. rows of dims[0] values) encoded as `type`
    /// when the file is written.
    public init(name: String, dims: [Int], type: GGMLType, values: @escaping () -> [Float]) {
        let count = dims.reduce(1, *)
        self.init(name: name, dims: dims, type: type, encode: {
            let v = values()
            precondition(v.count == count, "\(name): \(v.count) values for dims \(dims)")
            return TensorEncoding.encode(v, as: type)
        })
    }

    /// `values` encoded as `type`.
    public init(name: String, dims: [Int], type: GGMLType, values: [Float]) {
        self.init(name: name, dims: dims, type: type, values: { values })
    }

    private init(name: String, dims: [Int], type: GGMLType, encode: @escaping () -> Data) {
        self.name = name
        self.dims = dims
        self.type = type
        self.encode = encode
    }

    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
    /// The encoded bytes (computed on each call).
    public var data: Data { encode() }
}

/// Writes a GGUF v3 file: metadata pairs in the order given, then the tensors in the order given.
public struct GGUFWriter {
    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [GGUFTensor] = []
    public let alignment: Int

    public init(alignment: Int = GGUFFormat.defaultAlignment) {
        self.alignment = alignment
    }

    /// Adds (or replaces, keeping its place) a metadata pair.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    public mutating func add(_ tensor: GGUFTensor) { tensors.append(tensor) }

    /// Header, metadata, tensor infos and the padding up to the data section.
    public func headerBytes() -> Data {
        var w = BinaryWriter()
        w.u32(GGUFFormat.magic)
        w.u32(GGUFFormat.version)
        w.u64(UInt64(tensors.count))
        w.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            w.ggufString(key)
            w.u32(value.type.rawValue)
            w.ggufValue(value)
        }
        var offset = 0
        for t in tensors {
            w.ggufString(t.name)
            w.u32(UInt32(t.dims.count))
            for d in t.dims { w.u64(UInt64(d)) }
            w.u32(t.type.rawValue)
            w.u64(UInt64(offset))
            offset += GGUFFormat.padded(t.byteCount, to: alignment)
        }
        var data = w.data
        data.append(Data(count: GGUFFormat.padded(data.count, to: alignment) - data.count))
        return data
    }

    /// Size of the whole file.
    public var byteCount: Int {
        headerBytes().count + tensors.reduce(0) { $0 + GGUFFormat.padded($1.byteCount, to: alignment) }
    }

    /// Writes the file atomically (a temporary file renamed into place; nothing is left on error).
    public func write(to url: URL) throws {
        let header = headerBytes()
        let total = header.count + tensors.reduce(0) { $0 + GGUFFormat.padded($1.byteCount, to: alignment) }
        try AtomicFile.write(to: url, bytes: total) { tmp in
            guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: tmp.path) else {
                throw PipelineError("cannot create \(tmp.lastPathComponent)", location: url.path)
            }
            defer { try? handle.close() }
            try handle.write(contentsOf: header)
            for t in tensors {
                let bytes = t.data
                precondition(bytes.count == t.byteCount, "\(t.name): encoded to \(bytes.count) bytes, expected \(t.byteCount)")
                try handle.write(contentsOf: bytes)
                let pad = GGUFFormat.padded(bytes.count, to: alignment) - bytes.count
                if pad > 0 { try handle.write(contentsOf: Data(count: pad)) }
            }
            try handle.synchronize()
        }
    }
}

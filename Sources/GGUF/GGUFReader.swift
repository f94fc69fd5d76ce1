import ArtifactKit
import Foundation

/// One entry of the tensor table.
public struct GGUFTensorInfo: Equatable, Sendable {
    public var name: String
    /// ggml order: dims[0] is the contiguous dimension.
    public var dims: [Int]
    public var type: GGMLType
    /// Offset of the tensor's bytes from the start of the data section.
    public var offset: Int

    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
}

/// A GGUF v3 file read back (memory-mapped): metadata in file order, the tensor table, and the
/// tensors' values on request. Every inconsistency is a `PipelineError` located at the file.
public struct GGUFFile {
    public let url: URL
    public let version: UInt32
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Byte offset of the data section in the file.
    public let dataOffset: Int
    private let data: Data

    /// Most tensors / metadata pairs accepted (a damaged count must not allocate gigabytes).
    static let maxEntries: UInt64 = 1 << 20

    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw PipelineError("cannot read GGUF file: \(error.localizedDescription)", location: url.path)
        }
        try self.init(data: data, url: url)
    }

    public init(data: Data, url: URL) throws {
        var r = BinaryReader(data: data, source: url.path)
        let (version, tensorCount, kvCount) = try Self.readHeader(&r)
        var metadata: [(key: String, value: GGUFValue)] = []
        for _ in 0..<kvCount {
            let key = try r.ggufString()
            metadata.append((key, try r.ggufValue(try r.ggufValueType())))
        }
        let alignment = metadata.first(where: { $0.key == "general.alignment" })?.value.integer ?? GGUFFormat.defaultAlignment
        guard alignment > 0, alignment % 8 == 0 else {
            throw PipelineError("general.alignment is \(alignment); GGUF requires a positive multiple of 8", location: url.path)
        }
        var tensors: [GGUFTensorInfo] = []
        for _ in 0..<tensorCount { tensors.append(try Self.readTensorInfo(&r)) }
        self.url = url
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
        self.dataOffset = GGUFFormat.padded(r.offset, to: alignment)
        self.data = data
        try checkTensorPlacement()
    }

    private static func readHeader(_ r: inout BinaryReader) throws -> (UInt32, UInt64, UInt64) {
        let magic = try r.u32()
        guard magic == GGUFFormat.magic else {
            throw PipelineError("not a GGUF file: the first 4 bytes are not \"GGUF\"", location: r.source)
        }
        let version = try r.u32()
        guard version == 2 || version == 3 else {
            throw PipelineError("GGUF version \(version) is not supported (this reader knows 2 and 3)", location: r.source)
        }
        let tensorCount = try r.u64(), kvCount = try r.u64()
        guard tensorCount <= maxEntries, kvCount <= maxEntries else {
            throw PipelineError("GGUF header claims \(tensorCount) tensors and \(kvCount) metadata pairs: the file is damaged", location: r.source)
        }
        return (version, tensorCount, kvCount)
    }

    private static func readTensorInfo(_ r: inout BinaryReader) throws -> GGUFTensorInfo {
        let name = try r.ggufString()
        let nDims = try r.u32()
        guard (1...4).contains(nDims) else {
            throw PipelineError("tensor \"\(name)\" has \(nDims) dimensions; ggml allows 1 to 4", location: r.source)
        }
        var dims: [Int] = []
        for _ in 0..<nDims {
            let d = try r.u64()
            guard d > 0, d < 1 << 40 else { throw PipelineError("tensor \"\(name)\" has dimension \(d)", location: r.source) }
            dims.append(Int(d))
        }
        let rawType = try r.u32()
        guard let type = GGMLType(rawValue: rawType) else {
            throw PipelineError("tensor \"\(name)\" has ggml type \(rawType); this reader knows F32 (0), F16 (1) and Q8_0 (8)",
                                location: r.source)
        }
        guard dims[0] % type.blockSize == 0 else {
            throw PipelineError("tensor \"\(name)\" is \(type) but its first dimension \(dims[0]) is not a multiple of \(type.blockSize)",
                                location: r.source)
        }
        let offset = try r.u64()
        guard offset < 1 << 48 else { throw PipelineError("tensor \"\(name)\" has offset \(offset)", location: r.source) }
        return GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset))
    }

    /// Every tensor aligned and inside the file.
    private func checkTensorPlacement() throws {
        for t in tensors {
            guard t.offset % alignment == 0 else {
                throw PipelineError("tensor \"\(t.name)\" starts at offset \(t.offset), not a multiple of the alignment \(alignment)",
                                    location: url.path)
            }
            guard dataOffset + t.offset + t.byteCount <= data.count else {
                throw PipelineError("tensor \"\(t.name)\" (\(t.byteCount) bytes at data offset \(t.offset)) runs past the end of the file (\(data.count) bytes): it is truncated",
                                    location: url.path)
            }
        }
    }

    public func value(_ key: String) -> GGUFValue? {
        metadata.first(where: { $0.key == key })?.value
    }

    public func info(_ name: String) -> GGUFTensorInfo? {
        tensors.first(where: { $0.name == name })
    }

    /// The raw bytes of a tensor.
    public func bytes(of name: String) throws -> Data {
        guard let t = info(name) else { throw PipelineError("the GGUF file has no tensor \"\(name)\"", location: url.path) }
        let start = data.startIndex + dataOffset + t.offset
        return data.subdata(in: start..<(start + t.byteCount))
    }

    /// A tensor's values as float32 (dequantized for F16 and Q8_0).
    public func floats(of name: String) throws -> [Float] {
        let raw = try bytes(of: name)
        let t = info(name)!
        return TensorEncoding.decode(raw, as: t.type, count: t.elementCount)
    }
}

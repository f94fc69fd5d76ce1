import ArtifactKit
import Foundation
import GPT2

// OpenAI's original GPT-2 release is a TensorFlow "tensor bundle" checkpoint:
//
//   checkpoint                       text: model_checkpoint_path: "model.ckpt"
//   hparams.json                     n_vocab, n_ctx, n_embd, n_head, n_layer
//   model.ckpt.index                 a LevelDB-format table (SSTable) of name -> BundleEntryProto
//   model.ckpt.data-00000-of-00001   the raw tensor bytes, at the offsets the index gives
//
// The index is read here without TensorFlow. Table layout (leveldb doc/table_format.md):
// the last 48 bytes are a footer: two BlockHandles (varint64 offset, varint64 size) for the
// metaindex and index blocks, zero padding to 40 bytes, then the magic 0xdb4775248b80fb57
// (little-endian). The index block maps a separator key to the BlockHandle of each data block.
// Every block is followed by a 5-byte trailer: compression type (0 = none) and the masked
// crc32c of block+type. A block is a run of entries (varint32 shared key bytes, varint32
// unshared bytes, varint32 value length, key suffix, value) followed by the uint32 restart
// offsets and their uint32 count. In a bundle the entry with the empty key is the
// BundleHeaderProto; every other key is a tensor name whose value is a BundleEntryProto
// (tensorflow/core/protobuf/tensor_bundle.proto): 1 dtype, 2 shape, 3 shard_id, 4 offset,
// 5 size, 6 crc32c (fixed32, masked), 7 slices.

/// TensorFlow DataType enum values that can appear in a GPT-2 checkpoint.
public enum TFDataType: Int, Sendable {
    case float = 1, double = 2, int32 = 3, uint8 = 4, int16 = 5, int8 = 6, string = 7, int64 = 9, bool = 10
    case bfloat16 = 14, half = 19

    /// The safetensors spelling, for the float types the loader accepts.
    var safetensorsName: String {
        switch self {
        case .float: return "F32"
        case .half: return "F16"
        case .bfloat16: return "BF16"
        default: return "TF_\(self)"
        }
    }

    var elementSize: Int? {
        switch self {
        case .float, .int32: return 4
        case .double, .int64: return 8
        case .half, .bfloat16, .int16: return 2
        case .uint8, .int8, .bool: return 1
        case .string: return nil
        }
    }
}

/// One tensor of a TF checkpoint, as its index describes it.
public struct TFTensorEntry: Equatable, Sendable {
    public var dtype: TFDataType
    public var shape: [Int]
    public var shardID: Int
    /// Byte offset and size inside the data shard.
    public var offset: Int
    public var size: Int
    /// Masked crc32c of the tensor's bytes, as TensorFlow records it (nil when absent).
    public var crc32c: UInt32?
}

/// A TensorFlow tensor-bundle checkpoint folder, read without TensorFlow.
public struct TFCheckpoint: @unchecked Sendable {
    public let directory: URL
    /// "model.ckpt" (from the `checkpoint` file).
    public let prefix: String
    public let entries: [String: TFTensorEntry]
    /// hparams.json as numbers (n_vocab, n_ctx, n_embd, n_head, n_layer).
    public let hparams: [String: Int]
    public let numShards: Int

    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        var prefix = "model.ckpt"
        let checkpointFile = directory.appendingPathComponent("checkpoint")
        if let text = try? String(contentsOf: checkpointFile, encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("model_checkpoint_path:") {
                let value = line.dropFirst("model_checkpoint_path:".count).trimmingCharacters(in: .whitespaces)
                let unquoted = value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                // Paths may be absolute from the machine that wrote them; the files sit beside it here.
                prefix = URL(fileURLWithPath: unquoted).lastPathComponent
            }
        }
        self.prefix = prefix
        let indexURL = directory.appendingPathComponent(prefix + ".index")
        guard fm.fileExists(atPath: indexURL.path) else {
            throw PipelineError("TensorFlow checkpoint index not found", location: indexURL.path,
                                hint: "the folder must hold checkpoint, hparams.json, \(prefix).index and \(prefix).data-*")
        }
        let index = try Data(contentsOf: indexURL)
        let (header, entries) = try TFIndexParser(data: [UInt8](index), location: indexURL.path).parse()
        self.numShards = header.numShards
        self.entries = entries

        let hparamsURL = directory.appendingPathComponent("hparams.json")
        var hparams: [String: Int] = [:]
        if fm.fileExists(atPath: hparamsURL.path) {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(contentsOf: hparamsURL)) as? [String: Any] else {
                throw PipelineError("hparams.json is not a JSON object", location: hparamsURL.path)
            }
            for (k, v) in obj {
                if let n = v as? Int { hparams[k] = n }
            }
        }
        self.hparams = hparams
    }

    /// The data shard file of `shardID`, e.g. model.ckpt.data-00000-of-00001.
    public func shardURL(_ shardID: Int) -> URL {
        directory.appendingPathComponent(String(format: "%@.data-%05d-of-%05d", prefix, shardID, numShards))
    }

    /// The bytes each shard must have: the end of its last tensor.
    public var requiredShardSizes: [Int: Int] {
        var sizes: [Int: Int] = [:]
        for e in entries.values { sizes[e.shardID] = max(sizes[e.shardID] ?? 0, e.offset + e.size) }
        return sizes
    }

    /// Throws a "truncated" error naming the shard and its expected vs actual size when a data
    /// file is shorter than the index requires (or missing).
    public func checkDataFiles() throws {
        for (shard, need) in requiredShardSizes.sorted(by: { $0.key < $1.key }) {
            let url = shardURL(shard)
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: url.path),
                  let have = (attrs[.size] as? NSNumber)?.intValue else {
                throw PipelineError("checkpoint data file is missing", location: url.path,
                                    hint: "download all files of the checkpoint folder")
            }
            if have < need {
                throw PipelineError("checkpoint data file is truncated: the index requires \(need) bytes, the file has \(have)",
                                    location: url.path, hint: "the download was cut short; fetch the checkpoint again")
            }
        }
    }

    /// A GPT2Config from hparams.json (nil fields -> error naming the key).
    public func config(name: String? = nil) throws -> GPT2Config {
        let url = directory.appendingPathComponent("hparams.json")
        func need(_ key: String) throws -> Int {
            guard let v = hparams[key] else {
                throw PipelineError("hparams.json has no integer \"\(key)\"", location: url.path)
            }
            return v
        }
        let c = GPT2Config(name: "", vocabSize: try need("n_vocab"), contextLength: try need("n_ctx"),
                           embDim: try need("n_embd"), nHeads: try need("n_head"), nLayers: try need("n_layer"))
        let preset = GPT2Config.presets.first { var p = $0; p.name = ""; return p == c }
        var named = c
        named.name = name ?? preset?.name ?? "gpt2-custom-\(c.nLayers)x\(c.embDim)"
        try named.validate()
        return named
    }

    /// A tensor's values (float32 data; F16/BF16 widened). Checks the shard holds the whole
    /// tensor and, when the index records one, the masked crc32c of its bytes.
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else {
            throw PipelineError("no tensor named \"\(name)\" in the checkpoint index", location: directory.path)
        }
        let url = shardURL(e.shardID)
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw PipelineError("checkpoint data file is missing", location: url.path)
        }
        defer { try? handle.close() }
        let fileSize = Int(try handle.seekToEnd())
        guard e.offset + e.size <= fileSize else {
            throw PipelineError("checkpoint data file is truncated: tensor \"\(name)\" needs bytes \(e.offset)..<\(e.offset + e.size), the file has \(fileSize) (the index requires \(requiredShardSizes[e.shardID] ?? 0))",
                                location: url.path, hint: "the download was cut short; fetch the checkpoint again")
        }
        try handle.seek(toOffset: UInt64(e.offset))
        let bytes = try handle.read(upToCount: e.size) ?? Data()
        guard bytes.count == e.size else {
            throw PipelineError("short read of tensor \"\(name)\": \(bytes.count) of \(e.size) bytes", location: url.path)
        }
        if let want = e.crc32c {
            let got = CRC32C.masked(CRC32C.checksum([UInt8](bytes)))
            guard got == want else {
                throw PipelineError(String(format: "tensor \"%@\" fails its checksum (masked crc32c 0x%08x, index says 0x%08x)", name, got, want),
                                    location: url.path, hint: "the data file is damaged; fetch the checkpoint again")
            }
        }
        let count = e.shape.reduce(1, *)
        guard let elem = e.dtype.elementSize, count * elem == e.size else {
            throw PipelineError("tensor \"\(name)\": index gives \(e.size) bytes for shape \(e.shape) of \(e.dtype)", location: url.path)
        }
        return try bytes.withUnsafeBytes { raw -> [Float] in
            switch e.dtype {
            case .float:
                return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            case .half:
                return (0..<count).map { halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            case .bfloat16:
                return (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
            default:
                throw PipelineError("tensor \"\(name)\" has TF dtype \(e.dtype); expected float", location: url.path)
            }
        }
    }

    /// The Hugging Face name of a GPT-2 TF variable: model/h3/attn/c_attn/w -> h.3.attn.c_attn.weight.
    public static func hfName(forTF name: String) -> String? {
        let parts = name.split(separator: "/").map(String.init)
        guard parts.first == "model" else { return nil }
        func leaf(_ s: String) -> String? { ["w": "weight", "g": "weight", "b": "bias"][s] }
        switch parts.count {
        case 2 where parts[1] == "wte" || parts[1] == "wpe":
            return parts[1] + ".weight"
        case 3 where parts[1] == "ln_f":
            return leaf(parts[2]).map { "ln_f." + $0 }
        case 4 where parts[1].hasPrefix("h") && (parts[2] == "ln_1" || parts[2] == "ln_2"):
            guard let i = Int(parts[1].dropFirst()), let l = leaf(parts[3]) else { return nil }
            return "h.\(i).\(parts[2]).\(l)"
        case 5 where parts[1].hasPrefix("h"):
            guard let i = Int(parts[1].dropFirst()), let l = leaf(parts[4]) else { return nil }
            let pair = parts[2] + "/" + parts[3]
            guard ["attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"].contains(pair) else { return nil }
            return "h.\(i).\(parts[2]).\(parts[3]).\(l)"
        default:
            return nil
        }
    }
}

/// Loads OpenAI's original GPT-2 TensorFlow checkpoint folder into the flat buffer of
/// `ParameterLayout(config:head:)`. Conv1D weights are stored [1, in, out] and squeezed to
/// [in, out], which is exactly the Hugging Face layout; no transposes are needed.
public func loadTFCheckpoint(directory: URL, config: GPT2Config, head: ModelHead, headInitSeed: UInt64 = 123) throws -> [Float] {
    try config.validate()
    let ckpt = try TFCheckpoint(directory: directory)
    let indexPath = directory.appendingPathComponent(ckpt.prefix + ".index").path
    if let hp = try? ckpt.config(), !WeightsShape.of(config).matches(hp) {
        throw PipelineError("the checkpoint does not match model config \(config.name): the config has \(WeightsShape.of(config)), but hparams.json says \(WeightsShape.of(hp))",
                            location: directory.appendingPathComponent("hparams.json").path,
                            hint: "choose the model size that matches the checkpoint")
    }
    var tensors: [String: (dtype: String, shape: [Int])] = [:]
    var original: [String: String] = [:]
    for (name, e) in ckpt.entries {
        guard let hf = TFCheckpoint.hfName(forTF: name) else {
            throw PipelineError("unexpected variable \"\(name)\" in a GPT-2 checkpoint", location: indexPath)
        }
        var shape = e.shape
        if shape.count == 3 && shape[0] == 1 { shape.removeFirst() }  // Conv1D kernels: [1, in, out]
        tensors[hf] = (e.dtype.safetensorsName, shape)
        original[hf] = name
    }
    let source = NamedTensorSource(tensors: tensors, originalName: original,
                                   read: { name, dst in
                                       let values = try ckpt.floats(original[name]!)
                                       guard values.count == dst.count else {
                                           throw PipelineError("tensor \"\(original[name]!)\" holds \(values.count) values, expected \(dst.count)", location: indexPath)
                                       }
                                       _ = dst.initialize(from: values)
                                   },
                                   location: indexPath,
                                   hint: "the checkpoint is not OpenAI's GPT-2 layout for this config")
    // Names, shapes and sizes are checked before any data is touched, then the data files'
    // lengths, so a truncated download is reported as such and not as a checksum failure.
    let layout = ParameterLayout(config: config, head: head)
    _ = try assembleParameters(source, layout: layout, headInitSeed: headInitSeed, ignored: [], readValues: false)
    try ckpt.checkDataFiles()
    return try assembleParameters(source, layout: layout, headInitSeed: headInitSeed, ignored: [])
}

/// CRC-32C (Castagnoli), as LevelDB tables and TF bundles use it, with their masking.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82f6_3b78 : c >> 1 }
        return c
    }

    public static func checksum<S: Sequence>(_ bytes: S, initial: UInt32 = 0) -> UInt32 where S.Element == UInt8 {
        var crc = ~initial
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
        return ~crc
    }

    /// LevelDB's mask: rotate right by 15 and add a constant, so a crc of data holding crcs differs.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }
}

struct TFBundleHeader {
    var numShards = 1
    var littleEndian = true
}

/// Parses a tensor-bundle index (LevelDB table of BundleEntryProto).
struct TFIndexParser {
    let data: [UInt8]
    let location: String

    static let magic: UInt64 = 0xdb47_7524_8b80_fb57

    func fail(_ message: String) -> PipelineError {
        PipelineError("checkpoint index is malformed: \(message)", location: location,
                      hint: "the .index file is damaged or not a TensorFlow checkpoint index; fetch it again")
    }

    func parse() throws -> (TFBundleHeader, [String: TFTensorEntry]) {
        guard data.count >= 48 else { throw fail("file is \(data.count) bytes, shorter than the 48-byte table footer") }
        let footer = Array(data[(data.count - 48)...])
        var magic: UInt64 = 0
        for k in 0..<8 { magic |= UInt64(footer[40 + k]) << (8 * UInt64(k)) }
        guard magic == Self.magic else {
            throw fail(String(format: "footer magic is 0x%016llx, expected 0x%016llx (LevelDB table)", magic, Self.magic))
        }
        var r = ProtoReader(bytes: footer[0..<40], fail: fail)
        _ = try r.varint()  // metaindex offset: a bundle's metaindex is empty
        _ = try r.varint()
        let indexOffset = Int(try r.varint())
        let indexSize = Int(try r.varint())

        var header: TFBundleHeader?
        var entries: [String: TFTensorEntry] = [:]
        for (_, handle) in try blockEntries(offset: indexOffset, size: indexSize, what: "index block") {
            var h = ProtoReader(bytes: handle[...], fail: fail)
            let offset = Int(try h.varint())
            let size = Int(try h.varint())
            for (key, value) in try blockEntries(offset: offset, size: size, what: "data block at \(offset)") {
                if key.isEmpty {
                    header = try parseHeader(value)
                    continue
                }
                guard let name = String(bytes: key, encoding: .utf8) else { throw fail("a tensor name is not UTF-8") }
                guard entries[name] == nil else { throw fail("tensor \"\(name)\" is listed twice") }
                entries[name] = try parseEntry(value, name: name)
            }
        }
        guard let header else { throw fail("no bundle header (the entry with the empty key)") }
        guard header.littleEndian else { throw PipelineError("big-endian checkpoints are not supported", location: location) }
        for (name, e) in entries where e.shardID >= header.numShards {
            throw fail("tensor \"\(name)\" is in shard \(e.shardID) but the header says \(header.numShards) shard(s)")
        }
        return (header, entries)
    }

    /// Checks a block's trailer (no compression, masked crc32c) and decodes its key/value entries.
    func blockEntries(offset: Int, size: Int, what: String) throws -> [([UInt8], [UInt8])] {
        guard offset >= 0, size >= 4, offset + size + 5 <= data.count - 48 else {
            throw fail("\(what): handle (offset \(offset), size \(size)) points outside the file")
        }
        let block = data[offset..<(offset + size)]
        let type = data[offset + size]
        guard type == 0 else {
            throw fail("\(what) is compressed (type \(type)); only uncompressed tables are supported")
        }
        var stored: UInt32 = 0
        for k in 0..<4 { stored |= UInt32(data[offset + size + 1 + k]) << (8 * UInt32(k)) }
        let actual = CRC32C.masked(CRC32C.checksum(data[offset...(offset + size)]))
        guard stored == actual else {
            throw fail(String(format: "\(what) fails its checksum (stored 0x%08x, computed 0x%08x)", stored, actual))
        }
        let restartCount = Int(readU32(offset + size - 4))
        let restartsStart = size - 4 - 4 * restartCount
        guard restartCount >= 1, restartsStart >= 0 else { throw fail("\(what): bad restart count \(restartCount)") }

        var out: [([UInt8], [UInt8])] = []
        var r = ProtoReader(bytes: block.prefix(restartsStart), fail: fail)
        var lastKey: [UInt8] = []
        while !r.atEnd {
            let shared = Int(try r.varint())
            let unshared = Int(try r.varint())
            let valueLength = Int(try r.varint())
            guard shared <= lastKey.count else { throw fail("\(what): key shares \(shared) bytes with a \(lastKey.count)-byte key") }
            let key = Array(lastKey.prefix(shared)) + (try r.bytes(unshared))
            let value = try r.bytes(valueLength)
            out.append((key, value))
            lastKey = key
        }
        return out
    }

    func readU32(_ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(data[at + k]) << (8 * UInt32(k)) }
        return v
    }

    func parseHeader(_ value: [UInt8]) throws -> TFBundleHeader {
        var h = TFBundleHeader()
        var r = ProtoReader(bytes: value[...], fail: fail)
        while !r.atEnd {
            let (field, wire) = try r.tag()
            switch (field, wire) {
            case (1, 0): h.numShards = Int(try r.varint())
            case (2, 0): h.littleEndian = try r.varint() == 0
            default: try r.skip(wire)
            }
        }
        guard h.numShards >= 1 else { throw fail("bundle header says \(h.numShards) shards") }
        return h
    }

    func parseEntry(_ value: [UInt8], name: String) throws -> TFTensorEntry {
        var r = ProtoReader(bytes: value[...], fail: fail)
        var dtypeRaw = 0
        var shape: [Int] = []
        var shard = 0, offset = 0, size = 0
        var crc: UInt32?
        var sliced = false
        while !r.atEnd {
            let (field, wire) = try r.tag()
            switch (field, wire) {
            case (1, 0): dtypeRaw = Int(try r.varint())
            case (2, 2): shape = try parseShape(try r.bytes(Int(try r.varint())), name: name)
            case (3, 0): shard = Int(try r.varint())
            case (4, 0): offset = Int(Int64(bitPattern: try r.varint()))
            case (5, 0): size = Int(Int64(bitPattern: try r.varint()))
            case (6, 5): crc = try r.fixed32()
            case (7, 2): sliced = true; try r.skip(wire)
            default: try r.skip(wire)
            }
        }
        guard !sliced else { throw fail("tensor \"\(name)\" is stored as slices, which is not supported") }
        guard let dtype = TFDataType(rawValue: dtypeRaw) else { throw fail("tensor \"\(name)\" has unknown TF dtype \(dtypeRaw)") }
        guard offset >= 0, size >= 0 else { throw fail("tensor \"\(name)\" has offset \(offset), size \(size)") }
        if let elem = dtype.elementSize, shape.reduce(1, *) * elem != size {
            throw fail("tensor \"\(name)\": \(size) bytes do not fit shape \(shape) of \(dtype)")
        }
        return TFTensorEntry(dtype: dtype, shape: shape, shardID: shard, offset: offset, size: size, crc32c: crc)
    }

    /// TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1, string name = 2); bool unknown_rank = 3.
    func parseShape(_ bytes: [UInt8], name: String) throws -> [Int] {
        var dims: [Int] = []
        var r = ProtoReader(bytes: bytes[...], fail: fail)
        while !r.atEnd {
            let (field, wire) = try r.tag()
            if field == 2 && wire == 2 {
                var d = ProtoReader(bytes: try r.bytes(Int(try r.varint()))[...], fail: fail)
                var size = 0
                while !d.atEnd {
                    let (f, w) = try d.tag()
                    if f == 1 && w == 0 { size = Int(Int64(bitPattern: try d.varint())) } else { try d.skip(w) }
                }
                guard size >= 0 else { throw fail("tensor \"\(name)\" has an unknown (-1) dimension") }
                dims.append(size)
            } else if field == 3 && wire == 0 {
                if try r.varint() != 0 { throw fail("tensor \"\(name)\" has unknown rank") }
            } else {
                try r.skip(wire)
            }
        }
        return dims
    }
}

/// Reads protobuf wire format (and LevelDB varints, which are the same encoding).
struct ProtoReader {
    let bytes: ArraySlice<UInt8>
    var i: Int
    let fail: (String) -> PipelineError

    init(bytes: ArraySlice<UInt8>, fail: @escaping (String) -> PipelineError) {
        self.bytes = bytes
        self.i = bytes.startIndex
        self.fail = fail
    }

    var atEnd: Bool { i >= bytes.endIndex }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < bytes.endIndex else { throw fail("varint runs past the end of its record") }
            let b = bytes[i]
            i += 1
            guard shift < 64 else { throw fail("varint longer than 10 bytes") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, i + n <= bytes.endIndex else { throw fail("a field of \(n) bytes runs past the end of its record") }
        defer { i += n }
        return Array(bytes[i..<(i + n)])
    }

    mutating func fixed32() throws -> UInt32 {
        let b = try bytes(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    mutating func tag() throws -> (field: Int, wire: Int) {
        let t = try varint()
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try bytes(8)
        case 2: _ = try bytes(Int(try varint()))
        case 5: _ = try bytes(4)
        default: throw fail("unsupported protobuf wire type \(wire)")
        }
    }
}

import ArtifactKit
import Foundation
import GPT2

// The safetensors format (https://github.com/huggingface/safetensors, "Format" section):
//
//   [8 bytes: N, little-endian u64] [N bytes: UTF-8 JSON header] [data section]
//
// The header is a JSON object mapping each tensor name to
// {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} (offsets relative to the start
// of the data section), plus an optional "__metadata__" object of string -> string.
// The reference implementation rejects a file unless the tensors' byte ranges are contiguous,
// do not overlap, each holds exactly shape x dtype-size bytes, and together cover the data
// section exactly; this reader enforces the same rules so that a damaged download is caught
// here with a message naming the tensor, not later as garbage numbers.

/// A safetensors file, validated on open and memory-mapped so that a 500 MB model is not copied
/// until a tensor is asked for.
public struct SafetensorsFile: @unchecked Sendable {
    /// Largest header accepted; the reference implementation uses the same 100 MB cap so that a
    /// corrupt length cannot make us allocate gigabytes.
    public static let maxHeaderBytes = 100_000_000

    /// Element sizes of every dtype the format defines (all are accepted when validating a file;
    /// only float / integer ones can be read as numbers).
    public static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]

    struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        /// Byte range inside the data section.
        var begin: Int
        var end: Int
    }

    public let url: URL
    /// The `__metadata__` object (empty when the file has none).
    public let metadata: [String: String]
    private let entries: [Entry]
    private let indexByName: [String: Int]
    private let data: Data
    private let dataStart: Int

    /// Opens and validates `url`. Every problem is a `PipelineError` whose location is the file
    /// and whose message names the tensor or header field at fault.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw PipelineError("cannot read safetensors file: \(error.localizedDescription)", location: path)
        }
        try self.init(data: data, url: url)
    }

    /// Validates safetensors bytes already in memory; `url` is used in messages only.
    public init(data: Data, url: URL) throws {
        let check = HeaderCheck(path: url.path)
        let n = try check.headerLength(data)
        let (metadata, headerEntries) = try check.metadataAndEntries(try check.headerFields(data, headerLength: n))
        // File order = order in the data section; ranges must tile it with no gap and no overlap.
        let entries = headerEntries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        try check.tiling(entries, fileSize: data.count, headerLength: n)

        self.url = url
        self.metadata = metadata
        self.entries = entries
        self.indexByName = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        self.data = data
        self.dataStart = 8 + n
    }

    /// The checks of `init(data:url:)`; every problem is a `PipelineError` located at the file.
    private struct HeaderCheck {
        let path: String

        func fail(_ message: String, hint: String? = nil) -> PipelineError {
            PipelineError(message, location: path,
                          hint: hint ?? "the file is not a valid safetensors file; download or write it again")
        }

        /// The length field: N header bytes follow it, within the cap and the file.
        func headerLength(_ data: Data) throws -> Int {
            guard data.count >= 8 else {
                throw fail("file is too short for a safetensors header: \(data.count) bytes, need at least 8")
            }
            let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            guard headerLength <= UInt64(SafetensorsFile.maxHeaderBytes) else {
                throw fail("header length \(headerLength) bytes exceeds the \(SafetensorsFile.maxHeaderBytes)-byte limit (corrupt length field?)")
            }
            let n = Int(headerLength)
            guard 8 + n <= data.count else {
                throw fail("file is truncated: header says \(n) header bytes but the file has only \(data.count - 8) after the length field")
            }
            return n
        }

        /// The header's JSON object, its fields in file order.
        func headerFields(_ data: Data, headerLength n: Int) throws -> [(String, OrderedJSON)] {
            let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + n))
            let root: OrderedJSON
            do {
                root = try OrderedJSON.parse([UInt8](headerBytes))
            } catch let e as OrderedJSON.ParseError {
                throw fail("header is not valid JSON: \(e.message)")
            }
            guard case .object(let fields) = root else {
                throw fail("header is not a JSON object")
            }
            return fields
        }

        /// `__metadata__` and the tensor entries (in header order); a name may appear once.
        func metadataAndEntries(_ fields: [(String, OrderedJSON)]) throws -> ([String: String], [Entry]) {
            var metadata: [String: String] = [:]
            var entries: [Entry] = []
            var seen = Set<String>()
            for (name, value) in fields {
                guard seen.insert(name).inserted else { throw fail("header lists \"\(name)\" twice") }
                if name == "__metadata__" {
                    metadata = try self.metadata(value)
                } else {
                    entries.append(try entry(name, value))
                }
            }
            return (metadata, entries)
        }

        func metadata(_ value: OrderedJSON) throws -> [String: String] {
            guard case .object(let pairs) = value else { throw fail("__metadata__ is not a JSON object") }
            var metadata: [String: String] = [:]
            for (k, v) in pairs {
                guard case .string(let s) = v else {
                    throw fail("__metadata__ value for \"\(k)\" is not a string")
                }
                metadata[k] = s
            }
            return metadata
        }

        /// One tensor's entry: a known dtype, and data_offsets holding exactly shape x dtype-size bytes.
        func entry(_ name: String, _ value: OrderedJSON) throws -> Entry {
            let (dtype, shape, offsets) = try entryFields(name, value)
            guard let size = SafetensorsFile.dtypeSizes[dtype] else {
                throw fail("tensor \"\(name)\": unknown dtype \"\(dtype)\"")
            }
            guard offsets[0] <= offsets[1] else {
                throw fail("tensor \"\(name)\": data_offsets [\(offsets[0]), \(offsets[1])] end before they begin")
            }
            var count = 1
            for d in shape {
                let (p, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("tensor \"\(name)\": shape \(shape) is too large") }
                count = p
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: size)
            guard !o, bytes == offsets[1] - offsets[0] else {
                throw fail("tensor \"\(name)\": shape \(shape) of \(dtype) needs \(count) x \(size) = \(count &* size) bytes but data_offsets [\(offsets[0]), \(offsets[1])] hold \(offsets[1] - offsets[0])")
            }
            return Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
        }

        /// The entry's three fields, each present once and well-typed, and no other.
        private func entryFields(_ name: String, _ value: OrderedJSON) throws -> (dtype: String, shape: [Int], offsets: [Int]) {
            guard case .object(let props) = value else { throw fail("tensor \"\(name)\": entry is not a JSON object") }
            var dtype: String?
            var shape: [Int]?
            var offsets: [Int]?
            for (k, v) in props {
                switch k {
                case "dtype":
                    guard case .string(let s) = v else { throw fail("tensor \"\(name)\": dtype is not a string") }
                    dtype = s
                case "shape":
                    guard let dims = v.nonNegativeInts else {
                        throw fail("tensor \"\(name)\": shape is not a list of non-negative integers")
                    }
                    shape = dims
                case "data_offsets":
                    guard let o = v.nonNegativeInts, o.count == 2 else {
                        throw fail("tensor \"\(name)\": data_offsets is not a pair of non-negative integers")
                    }
                    offsets = o
                default:
                    throw fail("tensor \"\(name)\": unknown field \"\(k)\"")
                }
            }
            guard let dtype else { throw fail("tensor \"\(name)\": dtype is missing") }
            guard let shape else { throw fail("tensor \"\(name)\": shape is missing") }
            guard let offsets else { throw fail("tensor \"\(name)\": data_offsets is missing") }
            return (dtype, shape, offsets)
        }

        /// The entries, sorted by offset, must tile the data section exactly: no gap, no overlap,
        /// nothing missing or left over.
        func tiling(_ entries: [Entry], fileSize: Int, headerLength n: Int) throws {
            var expected = 0
            for e in entries {
                if e.begin < expected {
                    throw fail("tensor \"\(e.name)\": data_offsets [\(e.begin), \(e.end)] overlap the previous tensor, which ends at \(expected)")
                }
                if e.begin > expected {
                    throw fail("tensor \"\(e.name)\": data_offsets begin at \(e.begin) but the previous tensor ends at \(expected) (gap in the data section)")
                }
                expected = e.end
            }
            let dataSection = fileSize - 8 - n
            if expected != dataSection {
                if expected > dataSection {
                    throw fail("file is truncated: the header describes \(expected) data bytes (file size \(8 + n + expected)) but the file has \(dataSection) (file size \(fileSize))",
                               hint: "the download or copy was cut short; fetch the file again")
                }
                throw fail("file has \(dataSection - expected) bytes after the last tensor: the header describes \(expected) data bytes (file size \(8 + n + expected)) but the file is \(fileSize) bytes")
            }
        }
    }

    /// Tensor names in the order their bytes appear in the data section.
    public var tensorNames: [String] { entries.map(\.name) }

    /// Dtype (e.g. "F32") and shape of a tensor, or nil when the file has no such tensor.
    public func info(_ name: String) -> (dtype: String, shape: [Int])? {
        indexByName[name].map { (entries[$0].dtype, entries[$0].shape) }
    }

    private func entry(_ name: String) throws -> Entry {
        guard let i = indexByName[name] else {
            throw PipelineError("no tensor named \"\(name)\" in the file", location: url.path)
        }
        return entries[i]
    }

    /// Calls `body` with the raw little-endian bytes of a tensor (no copy).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let e = try entry(name)
        return try data.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[(dataStart + e.begin)..<(dataStart + e.end)]))
        }
    }

    /// A float tensor's values in row-major order: F32 as stored, F16 and BF16 widened exactly.
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        let count = e.shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { try readFloats(name, into: $0) }
        return out
    }

    /// Converts a float tensor straight into `destination` (which must hold exactly its element
    /// count), so a large model is copied once, from the mapped file into the parameter buffer.
    public func readFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let e = try entry(name)
        let count = e.shape.reduce(1, *)
        guard destination.count == count else {
            throw PipelineError("tensor \"\(name)\" has \(count) elements, the destination holds \(destination.count)", location: url.path)
        }
        guard count > 0 else { return }
        try withRawBytes(name) { raw in
            switch e.dtype {
            case "F32":
                // The file is little-endian; so is every host we build for (x86_64, arm64).
                memcpy(destination.baseAddress!, raw.baseAddress!, 4 * count)
                if UInt32(littleEndian: 1) != 1 {
                    for i in 0..<count { destination[i] = Float(bitPattern: UInt32(littleEndian: destination[i].bitPattern)) }
                }
            case "F16":
                for i in 0..<count {
                    destination[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case "BF16":
                for i in 0..<count {
                    let b = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    destination[i] = Float(bitPattern: UInt32(b) << 16)
                }
            default:
                throw PipelineError("tensor \"\(name)\" has dtype \(e.dtype); expected a float tensor (F32, F16 or BF16)",
                                    location: url.path)
            }
        }
    }

    /// An integer tensor's values (I64, I32, I16, I8, U8, U16, U32; U64 when every value fits).
    public func int64s(_ name: String) throws -> [Int64] {
        let e = try entry(name)
        let count = e.shape.reduce(1, *)
        return try withRawBytes(name) { raw -> [Int64] in
            func read<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
                (0..<count).map { Int64(T(littleEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * $0, as: T.self))) }
            }
            switch e.dtype {
            case "I64": return read(Int64.self)
            case "I32": return read(Int32.self)
            case "I16": return read(Int16.self)
            case "I8": return read(Int8.self)
            case "U8": return read(UInt8.self)
            case "U16": return read(UInt16.self)
            case "U32": return read(UInt32.self)
            case "U64":
                return try (0..<count).map {
                    let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))
                    guard let s = Int64(exactly: v) else {
                        throw PipelineError("tensor \"\(name)\" element \($0) = \(v) does not fit in Int64", location: url.path)
                    }
                    return s
                }
            default:
                throw PipelineError("tensor \"\(name)\" has dtype \(e.dtype); expected an integer tensor (I64, I32, ...)",
                                    location: url.path)
            }
        }
    }
}

/// IEEE 754 binary16 -> binary32, exact for every value (subnormals, infinities, NaN payloads).
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = UInt32(h >> 10) & 0x1f
    var mant = UInt32(h & 0x3ff)
    if exp == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
    if exp != 0 { return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13)) }
    if mant == 0 { return Float(bitPattern: sign) }
    // Subnormal half: normalise into a float exponent.
    var e: UInt32 = 113
    while mant & 0x400 == 0 { mant <<= 1; e -= 1 }
    return Float(bitPattern: sign | (e << 23) | ((mant & 0x3ff) << 13))
}

/// Writes safetensors files that the Python `safetensors` package and Hugging Face load.
public enum SafetensorsWriter {
    /// Writes F32 tensors in the given order with an optional `__metadata__` object. The file is
    /// produced at a temporary path and renamed into place, so `url` never holds a partial file.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String],
                             to url: URL) throws {
        for t in tensors where t.shape.allSatisfy({ $0 >= 0 }) && t.shape.reduce(1, *) != t.values.count {
            throw PipelineError("tensor \"\(t.name)\": shape \(t.shape) does not match its \(t.values.count) values",
                                location: url.path)
        }
        try write(sources: tensors.map { t in TensorSource(name: t.name, shape: t.shape) { t.values } }, metadata: metadata, to: url)
    }

    /// A tensor whose values are made only when the writer reaches it, so a file of many tensors
    /// never needs all of them in memory at once.
    public struct TensorSource {
        public var name: String
        public var shape: [Int]
        public var values: () throws -> [Float]

        public init(name: String, shape: [Int], values: @escaping () throws -> [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// `write` over tensor sources, each asked for its values once, in order.
    public static func write(sources tensors: [TensorSource], metadata: [String: String], to url: URL) throws {
        var seen = Set<String>()
        for t in tensors {
            guard !t.name.isEmpty, t.name != "__metadata__" else {
                throw PipelineError("cannot write a tensor named \"\(t.name)\"", location: url.path)
            }
            guard seen.insert(t.name).inserted else {
                throw PipelineError("tensor \"\(t.name)\" is given twice", location: url.path)
            }
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw PipelineError("tensor \"\(t.name)\": negative dimension in shape \(t.shape)", location: url.path)
            }
        }
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for t in tensors {
            let bytes = 4 * t.shape.reduce(1, *)
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += parts.joined(separator: ",") + "}"
        // Pad with spaces (allowed by the format) so the data section starts 8-byte aligned, as the
        // Python writer does; readers that map the file can then view F32 data in place.
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        guard headerBytes.count <= SafetensorsFile.maxHeaderBytes else {
            throw PipelineError("safetensors header would be \(headerBytes.count) bytes, over the format's limit", location: url.path)
        }

        try AtomicFile.write(to: url) { tmp in
            guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: tmp.path) else {
                throw PipelineError("cannot create file", location: tmp.path)
            }
            defer { try? handle.close() }
            var prefix = Data()
            withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { prefix.append(contentsOf: $0) }
            prefix.append(contentsOf: headerBytes)
            try handle.write(contentsOf: prefix)
            for t in tensors {
                let values = try t.values()
                guard values.count == t.shape.reduce(1, *) else {
                    throw PipelineError("tensor \"\(t.name)\": shape \(t.shape) does not match its \(values.count) values", location: url.path)
                }
                // Little-endian hosts only (x86_64, arm64): the Float array's bytes are the file's.
                try values.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
            }
            try handle.synchronize()
        }
    }

    static func jsonString(_ s: String) -> String { JSONText.string(s) }
}

/// A small JSON parser that keeps object keys in file order and reports duplicates to the caller
/// (Foundation's parser loses both), and keeps integers exact.
enum OrderedJSON {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    struct ParseError: Error { var message: String }

    var nonNegativeInts: [Int]? {
        guard case .array(let items) = self else { return nil }
        var out: [Int] = []
        for item in items {
            guard case .int(let v) = item, v >= 0 else { return nil }
            out.append(v)
        }
        return out
    }

    static func parse(_ bytes: [UInt8]) throws -> OrderedJSON {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let value = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw ParseError(message: "unexpected text after the JSON value at byte \(p.i)") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
        }

        func error(_ m: String) -> ParseError { ParseError(message: "\(m) at byte \(i)") }

        mutating func expect(_ literal: String) throws {
            for b in literal.utf8 {
                guard i < bytes.count, bytes[i] == b else { throw error("expected \"\(literal)\"") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> OrderedJSON {
            guard depth < 64 else { throw error("nesting too deep") }
            guard i < bytes.count else { throw error("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var fields: [(String, OrderedJSON)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    fields.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw error("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                    throw error("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [OrderedJSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw error("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            default:
                return try number()
            }
        }

        mutating func number() throws -> OrderedJSON {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            var isInteger = true
            var digits = 0
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { digits += 1 }
                else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                            || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { isInteger = false }
                else { break }
                i += 1
            }
            guard digits > 0 else { i = start; throw error("unexpected character") }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if isInteger {
                guard let v = Int(text) else { throw error("integer \(text) out of range") }
                return .int(v)
            }
            guard let d = Double(text) else { throw error("malformed number \(text)") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw error("malformed \\u escape")
            }
            i += 4
            return v
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw error("unterminated string") }
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw error("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard i < bytes.count else { throw error("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xd800..<0xdc00).contains(scalar) {
                        guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xdc00..<0xe000).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
            }
            guard let s = String(bytes: out, encoding: .utf8) else {
                throw error("string is not valid UTF-8")
            }
            return s
        }
    }
}

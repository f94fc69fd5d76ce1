import Foundation

/// Little-endian binary writing for artifact files.
public struct BinaryWriter {
    public private(set) var data = Data()
    public init() {}

    public mutating func bytes(_ b: [UInt8]) { data.append(contentsOf: b) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    public mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    public mutating func f32(_ v: Float) { u32(v.bitPattern) }
    /// Appends a whole array's bytes at once (host order is little-endian on every platform we build for).
    public mutating func array<T>(_ values: [T]) { values.withUnsafeBytes { data.append(contentsOf: $0) } }
}

/// Little-endian binary reading with bounds checks that report which file was short.
public struct BinaryReader {
    public let data: Data
    public let source: String
    public private(set) var offset = 0

    public init(data: Data, source: String) {
        self.data = data
        self.source = source
    }

    public var remaining: Int { data.count - offset }

    /// Moves to byte `position` (for files whose header gives each part's offset).
    public mutating func seek(to position: Int) throws {
        guard position >= 0, position <= data.count else {
            throw PipelineError("file is truncated: wanted offset \(position), file has \(data.count) bytes", location: source)
        }
        offset = position
    }

    mutating func take(_ n: Int) throws -> Data {
        guard n >= 0, offset + n <= data.count else {
            throw PipelineError("file is truncated: wanted \(n) bytes at offset \(offset), file has \(data.count)", location: source)
        }
        defer { offset += n }
        return data.subdata(in: (data.startIndex + offset)..<(data.startIndex + offset + n))
    }

    public mutating func bytes(_ n: Int) throws -> [UInt8] { [UInt8](try take(n)) }
    public mutating func u16() throws -> UInt16 { try scalar() }
    public mutating func u32() throws -> UInt32 { try scalar() }
    public mutating func u64() throws -> UInt64 { try scalar() }
    public mutating func i32() throws -> Int32 { try scalar() }
    public mutating func f32() throws -> Float { Float(bitPattern: try u32()) }

    mutating func scalar<T: FixedWidthInteger>() throws -> T {
        let d = try take(MemoryLayout<T>.size)
        return T(littleEndian: d.withUnsafeBytes { $0.loadUnaligned(as: T.self) })
    }

    public mutating func array<T>(_ type: T.Type, count: Int) throws -> [T] {
        let d = try take(count * MemoryLayout<T>.stride)
        return [T](unsafeUninitializedCapacity: count) { buf, n in
            _ = d.withUnsafeBytes { memcpy(buf.baseAddress!, $0.baseAddress!, d.count) }
            n = count
        }
    }
}

/// The fixed start of every binary artifact: an 8-byte magic and a format version.
/// Readers check both, then the exact file size, and name the stage to rerun on a mismatch.
public struct ArtifactHeader: Equatable {
    public var magic: String      // exactly 8 ASCII bytes
    public var version: UInt32

    public init(magic: String, version: UInt32) {
        precondition(magic.utf8.count == 8, "magic must be 8 ASCII bytes")
        self.magic = magic
        self.version = version
    }

    public func write(to w: inout BinaryWriter) {
        w.bytes(Array(magic.utf8))
        w.u32(version)
    }

    /// Reads and checks magic and version; `producer` is the stage that writes such files.
    public func check(_ r: inout BinaryReader, producer: String) throws {
        let got = try r.bytes(8)
        guard got == Array(magic.utf8) else {
            let shown = String(decoding: got.map { (32...126).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
            throw PipelineError("wrong magic \"\(shown)\": expected \"\(magic)\" (not a file of this kind)",
                                location: r.source, hint: "rerun `\(producer)` to rewrite it")
        }
        let v = try r.u32()
        guard v == version else {
            throw PipelineError("format version \(v), but this tool reads version \(version)",
                                location: r.source, hint: "rerun `\(producer)` with this version of the tools")
        }
    }
}

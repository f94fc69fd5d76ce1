import ArtifactKit
import Foundation

/// A metadata value. Arrays carry their element type so that an empty array still says what it holds.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// An array of strings.
    public static func strings(_ values: [String]) -> GGUFValue { .array(.string, values.map(GGUFValue.string)) }
    /// An array of int32.
    public static func int32s(_ values: [Int32]) -> GGUFValue { .array(.int32, values.map(GGUFValue.int32)) }

    /// Any integer value as Int (nil for floats, strings, arrays).
    public var integer: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

// MARK: Encoding

extension BinaryWriter {
    /// A GGUF string: u64 byte count, then the UTF-8 bytes.
    mutating func ggufString(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes(utf8)
    }

    /// The value's bytes without its type tag (an array writes its element type and count first).
    mutating func ggufValue(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): bytes([x])
        case .int8(let x): bytes([UInt8(bitPattern: x)])
        case .uint16(let x): u16(x)
        case .int16(let x): u16(UInt16(bitPattern: x))
        case .uint32(let x): u32(x)
        case .int32(let x): i32(x)
        case .float32(let x): f32(x)
        case .bool(let x): bytes([x ? 1 : 0])
        case .string(let s): ggufString(s)
        case .uint64(let x): u64(x)
        case .int64(let x): u64(UInt64(bitPattern: x))
        case .float64(let x): u64(x.bitPattern)
        case .array(let elementType, let items):
            u32(elementType.rawValue)
            u64(UInt64(items.count))
            for item in items { ggufValue(item) }
        }
    }
}

// MARK: Decoding

extension BinaryReader {
    /// Longest string accepted: a damaged length must not make us allocate gigabytes.
    static let maxGGUFString = 1 << 24

    mutating func ggufString() throws -> String {
        let n = try u64()
        guard n <= UInt64(Self.maxGGUFString) else {
            throw PipelineError("GGUF string of \(n) bytes at offset \(offset - 8) is implausible: the file is damaged", location: source)
        }
        return String(decoding: try bytes(Int(n)), as: UTF8.self)
    }

    mutating func ggufValueType() throws -> GGUFValueType {
        let raw = try u32()
        guard let t = GGUFValueType(rawValue: raw) else {
            throw PipelineError("unknown GGUF metadata value type \(raw) at offset \(offset - 4)", location: source)
        }
        return t
    }

    /// One value of type `type` (an array reads its element type, count and elements).
    mutating func ggufValue(_ type: GGUFValueType) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try bytes(1)[0])
        case .int8: return .int8(Int8(bitPattern: try bytes(1)[0]))
        case .uint16: return .uint16(try u16())
        case .int16: return .int16(Int16(bitPattern: try u16()))
        case .uint32: return .uint32(try u32())
        case .int32: return .int32(try i32())
        case .float32: return .float32(try f32())
        case .bool: return .bool(try bytes(1)[0] != 0)
        case .string: return .string(try ggufString())
        case .uint64: return .uint64(try u64())
        case .int64: return .int64(Int64(bitPattern: try u64()))
        case .float64: return .float64(Double(bitPattern: try u64()))
        case .array:
            let elementType = try ggufValueType()
            let count = try u64()
            // Every element takes at least one byte: a count beyond the remaining bytes is damage.
            guard count <= UInt64(remaining) else {
                throw PipelineError("GGUF array of \(count) elements does not fit in the \(remaining) bytes left", location: source)
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try ggufValue(elementType)) }
            return .array(elementType, items)
        }
    }
}

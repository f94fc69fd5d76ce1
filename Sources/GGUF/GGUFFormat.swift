import ArtifactKit
import Foundation

// The GGUF file format, version 3 (llama.cpp / ggml; documented in ggml's docs/gguf.md and
// implemented in Python by gguf-py's GGUFWriter / GGUFReader). Everything is little-endian.
//
//   header        u32 magic 0x46554747 (the bytes "GGUF"), u32 version = 3,
//                 u64 tensor count, u64 metadata key/value count
//   metadata      per pair: string key, u32 value type, value
//   tensor infos  per tensor: string name, u32 n_dims, n_dims x u64 dims (ggml order: ne[0] first,
//                 the contiguous dimension, i.e. numpy's shape reversed), u32 ggml type,
//                 u64 offset of its data relative to the start of the data section
//   padding       zeros up to a multiple of the alignment (`general.alignment`, default 32)
//   data section  the tensors' bytes, each starting at a multiple of the alignment (so each one
//                 but the last is followed by zeros up to the next multiple)
//
// A string is u64 byte length + UTF-8 bytes (no terminator). A value is one of the scalar types
// below, a string, or an array: u32 element type, u64 count, the elements (arrays may nest).
//
// A tensor of ggml type F32 is 4 bytes per element, F16 is IEEE half precision (2 bytes), and
// Q8_0 stores ne[0] (which must be a multiple of 32) in blocks of 32 elements: an f16 scale d and
// 32 int8 values q, element = d * q (see Q8_0.swift). A 2-D tensor with dims [ne0, ne1] holds ne1
// rows of ne0 elements: a PyTorch Linear weight [out, in] is written with dims [in, out].

/// Constants of the container.
public enum GGUFFormat {
    /// "GGUF" read as a little-endian u32.
    public static let magic: UInt32 = 0x4655_4747
    public static let version: UInt32 = 3
    /// `general.alignment` when a file does not say otherwise; we always write 32 explicitly.
    public static let defaultAlignment = 32

    /// `n` rounded up to a multiple of `alignment`.
    public static func padded(_ n: Int, to alignment: Int) -> Int {
        (n + alignment - 1) / alignment * alignment
    }
}

/// The type tag of a metadata value (gguf_type in ggml).
public enum GGUFValueType: UInt32, CaseIterable, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7,
         string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12
}

/// The element types of tensors we write and read (ggml_type numbers; ggml has many more).
public enum GGMLType: UInt32, Sendable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q8_0 = 8

    /// Elements per block (1 for plain floats, 32 for Q8_0).
    public var blockSize: Int { self == .q8_0 ? 32 : 1 }
    /// Bytes per block: 4, 2, and 2 (f16 scale) + 32 (int8 values) = 34.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .q8_0: return 34
        }
    }

    /// Bytes of `elements` elements (a multiple of the block size).
    public func byteCount(elements: Int) -> Int { elements / blockSize * blockBytes }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q8_0: return "Q8_0"
        }
    }
}

/// The `--type` of an export: what the 2-D weight matrices become (`general.file_type`, which
/// llama.cpp calls LLAMA_FTYPE_ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7). Norms, biases and
/// the position table stay F32 in every case, as llama.cpp's converter does.
public enum GGUFType: String, CaseIterable, Sendable {
    case f32
    case f16
    case q8_0

    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 7
        }
    }

    /// The tensor type used for the quantizable weight matrices.
    public var matrixType: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8_0: return .q8_0
        }
    }

    /// Parses `--type`; anything else is an error that lists the choices.
    public static func parse(_ text: String, location: String = "--type") throws -> GGUFType {
        guard let t = GGUFType(rawValue: text.lowercased()) else {
            throw PipelineError("unknown GGUF type \"\(text)\"", location: location,
                                hint: "use one of: " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return t
    }
}

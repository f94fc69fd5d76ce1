import ArtifactKit
import Foundation

/// How a frozen base weight is stored.
public enum QuantizationType: String, CaseIterable, Codable, Sendable {
    /// 4-bit NormalFloat in blocks of 64 with double-quantized block scales (QLoRA).
    case nf4
    /// int8 with one absmax per output channel (LLM.int8 vector-wise).
    case int8
}

/// A Linear weight [rows = output channels, cols = input features] held quantized: the layout
/// of torch's nn.Linear, which is the transpose of GPT-2's Conv1D [in, out] (our parameter
/// layout). bitsandbytes quantizes GPT-2 in this same orientation (transformers transposes
/// Conv1D weights into Linear4bit), so the codes equal its codes bit for bit.
///
/// Products never materialise the float32 matrix: `dequantizeRows` expands a tile of output
/// channels for an sgemm, and the matrix-vector kernels read the packed codes directly.
public struct QuantizedMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    public let storage: Storage

    public enum Storage: Sendable {
        /// Packed NF4 indices (2 per byte) and the block scales, compressed as stored on disk.
        case nf4(packed: [UInt8], scales: CompressedScales, blockSize: Int)
        /// int8 codes, row-major, and one absmax per row.
        case int8(codes: [Int8], rowAbsmax: [Float])
    }

    public init(rows: Int, cols: Int, storage: Storage) {
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    public var type: QuantizationType {
        if case .nf4 = storage { return .nf4 }
        return .int8
    }

    /// Refuses a tensor with a non-finite element, naming the tensor and the element's
    /// [row, column] in the given shape.
    public static func checkFinite(_ values: UnsafeBufferPointer<Float>, shape: [Int], name: String) throws {
        guard let bad = values.firstIndex(where: { !$0.isFinite }) else { return }
        let cols = shape.count == 2 ? shape[1] : values.count
        throw PipelineError("cannot quantize \(name): element [\(bad / cols), \(bad % cols)] is \(values[bad])",
                            hint: "the base weights are corrupt or training diverged; start from finite weights")
    }

    /// Quantizes a weight already in [rows = out, cols = in] layout.
    public static func quantize(linear w: UnsafeBufferPointer<Float>, rows: Int, cols: Int, as type: QuantizationType) -> QuantizedMatrix {
        switch type {
        case .nf4:
            let (packed, absmax) = NF4.quantize(w)
            return QuantizedMatrix(rows: rows, cols: cols,
                                   storage: .nf4(packed: packed, scales: CompressedScales(compressing: absmax), blockSize: NF4.blockSize))
        case .int8:
            let (codes, scales) = Int8Rows.quantize(w, rows: rows, cols: cols)
            return QuantizedMatrix(rows: rows, cols: cols, storage: .int8(codes: codes, rowAbsmax: scales))
        }
    }

    /// Bytes the quantized matrix occupies (codes and scales).
    public var byteCount: Int {
        switch storage {
        case .nf4(let packed, let s, _): return packed.count + s.codes.count + 4 * s.absmax2.count + 4
        case .int8(let codes, let absmax): return codes.count + 4 * absmax.count
        }
    }
}

/// A run's choice for its frozen base: float32 (`none`) or quantized (QLoRA).
public enum BaseQuantization: String, CaseIterable, Codable, Sendable {
    case none, nf4, int8

    public var type: QuantizationType? { QuantizationType(rawValue: rawValue) }

    /// A quantized base is frozen: only LoRA adapters can train over it. Training its weights
    /// would be full fine-tuning of a quantized model, not QLoRA, so a run asking for that is
    /// refused; `addLoRA` says how the run's command turns LoRA on.
    public func requireLoRA(_ lora: Bool, addLoRA: String) throws {
        guard self != .none && !lora else { return }
        throw PipelineError("quantize_base \(rawValue) needs LoRA: a quantized base is frozen, and training all of its weights is full fine-tuning, not QLoRA",
                            location: "train.quantize_base", hint: "\(addLoRA), or use quantize_base none")
    }
}

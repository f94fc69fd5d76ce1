import ArtifactKit
import Foundation
import Quantization

/// The names of the Linear weights a quantized base replaces: the attention and MLP projections
/// of every block (the QLoRA paper quantizes every Linear layer).
public func quantizableLinearNames(_ config: GPT2Config) -> [String] {
    (0..<config.nLayers).flatMap { l in
        ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"].map { "h.\(l).\($0).weight" }
    }
}

/// The token embedding, which is also the language model's tied head: [V, C] row-major is
/// already the [out, in] layout of the head's product. With a quantized base it goes to int8, one
/// absmax per token row, whatever the projections' type: its rows are looked up and summed with
/// the position embeddings, and (language model) its products are the logits the loss and the
/// sampler read directly, so it gets the finer 8-bit code (1 byte per value instead of 4; 38.6 M
/// values in every GPT-2 size but xl's 80.4 M, 31% of gpt2-small). The classifier quantizes it
/// too: there it is only looked up, and float32 it would stay the largest tensor in memory.
/// LayerNorms, biases, the position embeddings and a classification head (`out_head`, K x C)
/// stay float32 (0.1-1% of the parameters).
public let quantizedEmbeddingName = "wte.weight"

extension GPT2Model {
    /// Quantizes the model's own Linear weights (`quantizableLinearNames`) as `type` and the token
    /// embedding as int8 (`quantizedEmbeddingName`); attaches them.
    /// `measure` sees each quantized matrix with its float32 values in the matrix's [out, in]
    /// layout (before they are released), e.g. to record the quantization error.
    @discardableResult
    public func quantizeBase(_ type: QuantizationType,
                             measure: ((String, QuantizedMatrix, UnsafeBufferPointer<Float>) -> Void)? = nil) throws -> QuantizedTensors {
        let projections = Set(quantizableLinearNames(config))
        var linears: [String: QuantizedLinear] = [:]
        for s in layout.tensors {
            let isEmbedding = s.name == quantizedEmbeddingName
            guard isEmbedding || projections.contains(s.name) else { continue }
            let values = UnsafeBufferPointer(start: params.base + s.offset, count: s.count)
            try QuantizedMatrix.checkFinite(values, shape: s.shape, name: s.name)
            func quantized(_ buffer: UnsafeBufferPointer<Float>, rows: Int, cols: Int, as t: QuantizationType) -> QuantizedMatrix {
                let m = QuantizedMatrix.quantize(linear: buffer, rows: rows, cols: cols, as: t)
                measure?(s.name, m, buffer)
                return m
            }
            // The head's [V, C] is already [out, in]; a Conv1D [in, out] weight is transposed once.
            let m = isEmbedding ? quantized(values, rows: s.shape[0], cols: s.shape[1], as: .int8)
                : transposed(values, rows: s.shape[0], cols: s.shape[1])
                    .withUnsafeBufferPointer { quantized($0, rows: s.shape[1], cols: s.shape[0], as: type) }
            linears[s.name] = QuantizedLinear(m)
        }
        let q = QuantizedTensors(type: type, linears: linears)
        try attachQuantizedBase(q)
        return q
    }

    /// From now on every pass reads these weights quantized. The float32 copies in the parameter
    /// buffer are released to the system (their whole pages; they read as zero afterwards), so the
    /// model's memory is that of the quantized base plus the float32 remainder.
    public func attachQuantizedBase(_ q: QuantizedTensors) throws {
        for (name, m) in q.linears {
            let (rows, cols) = name == quantizedEmbeddingName ? (0, 1) : (1, 0)
            guard let s = layout.spec(named: name), s.shape.count == 2, m.rows == s.shape[rows], m.cols == s.shape[cols] else {
                throw PipelineError("the quantized base does not fit \(config.name): tensor \(name) is [\(m.cols), \(m.rows)] there")
            }
        }
        quantizedBase = q
        for name in q.linears.keys { releasePages(of: layout.spec(named: name)!) }
    }

    /// The attached quantized base, if any.
    public var quantizedBaseWeights: QuantizedTensors? { quantizedBase }

    private func releasePages(of s: TensorSpec) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: params.base + s.offset), end = start + s.count * MemoryLayout<Float>.stride
        let alignedStart = (start + page - 1) / page * page, alignedEnd = end / page * page
        guard alignedEnd > alignedStart else {
            (params.base + s.offset).update(repeating: 0, count: s.count)
            return
        }
        // Only the partial pages at the two ends are written; the whole pages between are handed
        // back untouched (writing them first would make a never-touched calloc'ed buffer resident).
        let stride = MemoryLayout<Float>.stride
        (params.base + s.offset).update(repeating: 0, count: (alignedStart - start) / stride)
        UnsafeMutablePointer<Float>(bitPattern: alignedEnd)!.update(repeating: 0, count: (end - alignedEnd) / stride)
        _ = madvise(UnsafeMutableRawPointer(bitPattern: alignedStart), alignedEnd - alignedStart, MADV_DONTNEED)
    }
}

extension GPT2Model {
    /// A model whose quantized tensors come from `quantized` and every other tensor from
    /// `remainder`, without ever holding the quantized tensors in float32: the parameter buffer
    /// is zero-filled by the system (calloc), and the pages of the quantized tensors' slots are
    /// never written, so they never become resident.
    public convenience init(layout: ParameterLayout, quantized: QuantizedTensors, remainder: [String: [Float]]) throws {
        try self.init(layout: layout, unfilled: ())
        for t in layout.tensors where quantized[t.name] == nil {
            guard let values = remainder[t.name], values.count == t.count else {
                throw PipelineError("the quantized base lacks tensor \(t.name) (\(t.count) floats) of \(config.name)")
            }
            values.withUnsafeBufferPointer { (params.base + t.offset).update(from: $0.baseAddress!, count: t.count) }
        }
        try attachQuantizedBase(quantized)
    }

    /// A model whose parameters `fill` writes straight into its buffer (no second copy).
    public convenience init(layout: ParameterLayout, filling fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        try self.init(layout: layout, unfilled: ())
        try fill(UnsafeMutableBufferPointer(start: params.base, count: params.count))
    }

    /// One tensor in the model's own layout; a quantized one as its dequantized values, so a
    /// checkpoint written from these holds the float32 model the quantized one computes.
    public func tensorWithDequantizedBase(_ s: TensorSpec) -> [Float] {
        guard let linear = quantizedBase?[s.name] else { return Array(UnsafeBufferPointer(start: params.base + s.offset, count: s.count)) }
        var rowsOut = [Float](repeating: 0, count: linear.rows * linear.cols)
        linear.dequantize(rows: 0..<linear.rows, into: &rowsOut)
        if s.name == quantizedEmbeddingName { return rowsOut }
        return rowsOut.withUnsafeBufferPointer { transposed($0, rows: linear.rows, cols: linear.cols) }
    }

    /// All parameters in layout order, quantized tensors dequantized (`tensorWithDequantizedBase`).
    public func parametersWithDequantizedBase() -> [Float] {
        layout.tensors.flatMap { tensorWithDequantizedBase($0) }
    }
}

/// A [rows, cols] row-major matrix as [cols, rows]: between our Conv1D [in, out] weights and the
/// [out, in] layout of quantized matrices.
func transposed(_ m: UnsafeBufferPointer<Float>, rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: m.count)
    for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = m[r * cols + c] } }
    return out
}

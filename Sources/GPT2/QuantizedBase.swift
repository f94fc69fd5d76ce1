import ArtifactKit
import Foundation
import Quantization

/// The names of the Linear weights a quantized base replaces: the attention and MLP projections
/// of every block (the QLoRA paper quantizes every Linear layer). The embeddings (and the head
/// tied to wte), LayerNorms and biases stay float32: they are 31% of gpt2-small's parameters
/// but the token embedding is read by rows (a lookup, not a product) and the head's logits feed
/// the loss directly.
public func quantizableLinearNames(_ config: GPT2Config) -> [String] {
    (0..<config.nLayers).flatMap { l in
        ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"].map { "h.\(l).\($0).weight" }
    }
}

extension GPT2Model {
    /// Quantizes the model's own Linear weights (`quantizableLinearNames`) and attaches them.
    public func quantizeBase(_ type: QuantizationType) throws -> QuantizedTensors {
        var linears: [String: QuantizedLinear] = [:]
        for name in quantizableLinearNames(config) {
            let s = layout.spec(named: name)!
            let m = try QuantizedMatrix.quantize(conv1D: UnsafeBufferPointer(start: params.base + s.offset, count: s.count),
                                                 inDim: s.shape[0], outDim: s.shape[1], as: type, name: name)
            linears[name] = QuantizedLinear(m)
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
            guard let s = layout.spec(named: name), s.shape.count == 2, m.rows == s.shape[1], m.cols == s.shape[0] else {
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
        if alignedEnd > alignedStart {
            (params.base + s.offset).update(repeating: 0, count: s.count)
            _ = madvise(UnsafeMutableRawPointer(bitPattern: alignedStart), alignedEnd - alignedStart, MADV_DONTNEED)
        }
    }
}

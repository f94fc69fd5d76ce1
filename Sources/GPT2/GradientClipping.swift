import ArtifactKit
import Foundation

/// `torch.nn.utils.clip_grad_norm_`, the one gradient clipping of both trainers.
///
/// The global L2 norm over every element of every trainable gradient,
///     ||g|| = sqrt(sum_i g_i^2)
/// (torch takes the norm of the per-tensor norms: sqrt(sum_t ||g_t||^2), the same number), is
/// returned as measured, before clipping. With max_norm m every gradient element is multiplied by
///     c = min(1, m / (||g|| + 1e-6))
/// so the gradients shrink only when ||g|| + 1e-6 > m, to a norm of m (up to the 1e-6); otherwise
/// they stay as they are (torch multiplies by the clamped 1.0, which changes nothing). The sum of
/// squares is accumulated in double precision (torch: float32), the norm, c and the products in
/// float32 as torch computes them.
public enum GradientClipping {
    /// Measures `ranges` of `g` and clips them to `maxNorm` when given; returns the norm before clipping.
    public static func clip(_ g: UnsafeMutablePointer<Float>, ranges: [Range<Int>], maxNorm: Float?) -> Float {
        let norm = Float(ranges.reduce(0.0) { $0 + sumOfSquares(g + $1.lowerBound, count: $1.count) }.squareRoot())
        guard let maxNorm else { return norm }
        let coefficient = maxNorm / (norm + 1e-6)
        guard coefficient < 1 else { return norm }
        for r in ranges {
            let p = g + r.lowerBound
            parallelRows(r.count, grain: 65536) { rows in for i in rows { p[i] *= coefficient } }
        }
        return norm
    }

    /// The same over `ranges` of a flat gradient vector (the classifier's).
    public static func clip(_ g: inout [Float], ranges: [Range<Int>], maxNorm: Float?) -> Float {
        g.withUnsafeMutableBufferPointer { clip($0.baseAddress!, ranges: ranges, maxNorm: maxNorm) }
    }

    /// sum x^2 in double precision: float32 lanes over short chunks, each chunk's sum added as a double.
    static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0
        var start = 0
        while start < count {
            let end = min(start + 4096, count)
            var lanes = Float8(repeating: 0)
            var i = start
            while i + 8 <= end {
                let v = load8(x + i)
                lanes += v * v
                i += 8
            }
            var chunk = Double(lanes.sum())
            for j in i..<end { chunk += Double(x[j] * x[j]) }
            total += chunk
            start = end
        }
        return total
    }
}

extension GPT2Model {
    /// The global gradient norm of `trainable` before clipping; clipped to `maxNorm` when given
    /// (see `GradientClipping`). Call after the step's last backward pass, before `AdamW.update`.
    public func clipGradients(trainable: TrainableSet, maxNorm: Float?) throws -> Float {
        try withTrainableBuffers(trainable) { _, g, ranges in GradientClipping.clip(g, ranges: ranges, maxNorm: maxNorm) }
    }

    /// Hands the gradients of `trainable` to `body` as contiguous stretches, adjacent tensors
    /// merged (the whole model, a suffix of blocks, or the adapters: one stretch), e.g. to sum
    /// them across the processes of a data-parallel run.
    public func withTrainableGradients(_ trainable: TrainableSet, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        try withTrainableBuffers(trainable) { _, g, ranges in
            var stretches: [Range<Int>] = []
            for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if let last = stretches.last, last.upperBound == r.lowerBound {
                    stretches[stretches.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    stretches.append(r)
                }
            }
            for r in stretches { try body(UnsafeMutableBufferPointer(start: g + r.lowerBound, count: r.count)) }
        }
    }

    /// The parameter and gradient buffers `trainable` covers, with its ranges in them: the
    /// attached LoRA adapters' buffers, or the layout's tensors named by the set.
    func withTrainableBuffers<R>(_ trainable: TrainableSet,
                                 _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, [Range<Int>]) throws -> R) throws -> R {
        if trainable.adapters {
            guard let lora else { throw PipelineError("the trainable set names the LoRA adapters, but none are attached") }
            return try body(lora.params.base, lora.ensureGradients().base, [0..<lora.count])
        }
        let ranges = layout.tensors.filter { trainable.contains($0.name) }.map(\.range)
        return try withParameters { p in try withGradients { g in try body(p.baseAddress!, g.baseAddress!, ranges) } }
    }
}

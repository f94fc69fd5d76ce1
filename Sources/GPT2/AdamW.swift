import ArtifactKit
import Foundation

/// torch.optim.AdamW over the trainable tensors of a `GPT2Model`.
///
/// Per step t (1-based), for every trainable parameter p with gradient g:
///   p -= lr * weightDecay * p                        (decoupled decay, on every trainable tensor,
///                                                     biases and norms included, as the book does)
///   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// The moments are flat buffers of the parameter layout; only trainable ranges are touched.
public final class AdamW {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Number of steps taken so far.
    public private(set) var step = 0
    let m: FloatBuffer
    let v: FloatBuffer

    public init(parameterCount: Int, learningRate: Float = 5e-5, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
    }

    /// The moments (layout order), e.g. to checkpoint the optimizer.
    public var firstMoment: [Float] { m.array }
    public var secondMoment: [Float] { v.array }

    /// Restores a checkpointed state.
    public func restore(step: Int, firstMoment: [Float], secondMoment: [Float]) throws {
        guard firstMoment.count == m.count, secondMoment.count == v.count else {
            throw PipelineError("optimizer state has \(firstMoment.count)/\(secondMoment.count) floats, expected \(m.count)")
        }
        self.step = step
        firstMoment.withUnsafeBufferPointer { m.base.update(from: $0.baseAddress!, count: m.count) }
        secondMoment.withUnsafeBufferPointer { v.base.update(from: $0.baseAddress!, count: v.count) }
    }

    /// Applies one update with the model's accumulated gradients to the tensors in `trainable`.
    public func update(_ model: GPT2Model, trainable: TrainableSet) throws {
        try trainable.validate(against: model.layout)
        if trainable.adapters {
            guard let lora = model.lora, m.count == lora.count else {
                throw PipelineError("optimizer was built for \(m.count) parameters, the model's LoRA adapters have \(model.lora?.count ?? 0)")
            }
            guard trainable.names.isEmpty else {
                throw PipelineError("LoRA training updates only the adapters; the trainable set also names \(trainable.names.count) base tensors")
            }
        } else if m.count != model.layout.totalCount {
            throw PipelineError("optimizer was built for \(m.count) parameters, model has \(model.layout.totalCount)")
        }
        step += 1
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = eps
        let decay = 1 - lr * weightDecay
        let bc1 = 1 - powf(b1, Float(step))
        let bc2Sqrt = (1 - powf(b2, Float(step))).squareRoot()
        let stepSize = lr / bc1
        let mb = m.base, vb = v.base
        let ranges = model.layout.tensors.filter { trainable.contains($0.name) }.map(\.range)
        let kernel = { (pb: UnsafeMutablePointer<Float>, gb: UnsafeMutablePointer<Float>, ranges: [Range<Int>]) in
            for range in ranges {
                parallelRows(range.count, grain: 16384) { r in
                    let lo = range.lowerBound + r.lowerBound, hi = range.lowerBound + r.upperBound
                    // 8 lanes at a time: written out because the compiler cannot prove the four
                    // buffers apart and left the scalar loop (sqrt and divide) unvectorised.
                    var i = lo
                    while i + 8 <= hi {
                        let gi = load8(gb + i)
                        let mi = b1 * load8(mb + i) + (1 - b1) * gi
                        let vi = b2 * load8(vb + i) + (1 - b2) * gi * gi
                        store8(mi, mb + i)
                        store8(vi, vb + i)
                        let denom = vi.squareRoot() / bc2Sqrt + eps
                        store8(load8(pb + i) * decay - stepSize * mi / denom, pb + i)
                        i += 8
                    }
                    for i in i..<hi {
                        let gi = gb[i]
                        pb[i] *= decay
                        mb[i] = b1 * mb[i] + (1 - b1) * gi
                        vb[i] = b2 * vb[i] + (1 - b2) * gi * gi
                        let denom = vb[i].squareRoot() / bc2Sqrt + eps
                        pb[i] -= stepSize * mb[i] / denom
                    }
                }
            }
        }
        if trainable.adapters, let lora = model.lora {
            // LoRA: this optimizer's moments are the adapter buffer's (see init(adaptersOf:)).
            kernel(lora.params.base, lora.ensureGradients().base, [0..<lora.count])
            return
        }
        model.withParameters { p in
            model.withGradients { g in kernel(p.baseAddress!, g.baseAddress!, ranges) }
        }
    }
}

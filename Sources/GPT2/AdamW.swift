import ArtifactKit
import Foundation

/// torch.optim.AdamW: the one optimizer of both trainers, over the trainable tensors of a
/// `GPT2Model` or over a contiguous slice of a flat parameter vector (the classifier's).
///
/// Per step t (1-based), for every trainable parameter p with gradient g:
///   p -= lr * weightDecay * p                        (decoupled decay, on every trainable tensor,
///                                                     biases and norms included, as the book does)
///   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// The moments are flat buffers of the parameter layout; only trainable ranges are touched.
public final class AdamW {
    /// The rate of the next step (the trainers set it from their schedule before each update).
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
        // LoRA: this optimizer's moments are the adapter buffer's; otherwise the layout's.
        try model.withTrainableBuffers(trainable) { p, g, ranges in apply(parameters: p, gradients: g, ranges: ranges) }
    }

    /// One step over `range` of a flat parameter vector whose moments this optimizer holds for
    /// that range only (moment 0 is parameter `range.lowerBound`): the classifier's trainable slice.
    public func update(parameters: inout [Float], gradients: [Float], range: Range<Int>) {
        precondition(parameters.count >= range.upperBound && gradients.count >= range.upperBound && m.count == range.count)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                apply(parameters: p.baseAddress! + range.lowerBound, gradients: g.baseAddress! + range.lowerBound,
                      ranges: [0..<range.count])
            }
        }
    }

    /// Counts the step and applies `AdamWStep` to `ranges` (offsets shared by parameters,
    /// gradients and moments).
    private func apply(parameters pb: UnsafeMutablePointer<Float>, gradients gb: UnsafePointer<Float>, ranges: [Range<Int>]) {
        step += 1
        let hyper = AdamWStep(step: step, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                              weightDecay: weightDecay)
        for range in ranges {
            hyper.apply(parameters: pb + range.lowerBound, gradients: gb + range.lowerBound, m: m.base + range.lowerBound,
                        v: v.base + range.lowerBound, count: range.count)
        }
    }
}

/// The update rule of one AdamW step (torch.optim.AdamW, see `AdamW`), used by `AdamW`. The bias corrections are computed in double precision, as
/// PyTorch computes them (Python floats), then rounded once.
public struct AdamWStep: Sendable {
    public let beta1, beta2, eps: Float
    /// lr / (1 - beta1^t), sqrt(1 - beta2^t), 1 - lr * weightDecay.
    public let stepSize, bc2Sqrt, decay: Float

    public init(step: Int, learningRate: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        stepSize = Float(Double(learningRate) / (1 - pow(Double(beta1), Double(step))))
        bc2Sqrt = Float((1 - pow(Double(beta2), Double(step))).squareRoot())
        decay = 1 - learningRate * weightDecay
    }

    /// Updates `count` parameters and their moments in place, split over the cores.
    public func apply(parameters pb: UnsafeMutablePointer<Float>, gradients gb: UnsafePointer<Float>,
                      m mb: UnsafeMutablePointer<Float>, v vb: UnsafeMutablePointer<Float>, count: Int) {
        let (b1, b2, eps, stepSize, bc2Sqrt, decay) = (beta1, beta2, eps, stepSize, bc2Sqrt, decay)
        parallelRows(count, grain: 16384) { r in
            // 8 lanes at a time: written out because the compiler cannot prove the four
            // buffers apart and left the scalar loop (sqrt and divide) unvectorised.
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let gi = load8(gb + i)
                let mi = b1 * load8(mb + i) + (1 - b1) * gi
                let vi = b2 * load8(vb + i) + (1 - b2) * gi * gi
                store8(mi, mb + i)
                store8(vi, vb + i)
                let denom = vi.squareRoot() / bc2Sqrt + eps
                store8(load8(pb + i) * decay - stepSize * mi / denom, pb + i)
                i += 8
            }
            for i in i..<r.upperBound {
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

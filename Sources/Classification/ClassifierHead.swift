import ArtifactKit
import Foundation
import GPT2

/// The book's classification head, Linear(emb_dim, num_classes) with bias, applied to the pooled
/// final hidden state of each row, with the cross-entropy loss on top. Small (K x C), so plain Swift.
public struct ClassifierHead {
    public let layout: ParameterLayout
    public let width: Int
    public let numClasses: Int
    let weightOffset: Int
    let biasOffset: Int
    /// The head's LoRA adapter, when training with LoRA: offsets of A [C, rank] and B [rank, K]
    /// in the caller's parameter vector (base parameters, then adapters, from `vectorStart`), and the book's scale alpha.
    public struct LoRAHead: Sendable {
        public var aOffset: Int
        public var bOffset: Int
        public var rank: Int
        public var alpha: Float
    }
    public let lora: LoRAHead?

    /// `vectorStart`: the index of the full parameter vector the caller's vector starts at (the
    /// head's offsets are taken relative to it; see `ClassifierModel.parameters`).
    public init(layout: ParameterLayout, vectorStart: Int = 0, lora: LoRAHead? = nil) throws {
        self.lora = lora
        guard case .classifier(let k) = layout.head, let w = layout.spec(named: "out_head.weight"),
              let b = layout.spec(named: "out_head.bias") else {
            throw PipelineError("the model has no classification head", hint: "build the layout with head .classifier(numClasses:)")
        }
        self.layout = layout
        self.width = layout.config.embDim
        self.numClasses = k
        self.weightOffset = w.offset - vectorStart
        self.biasOffset = b.offset - vectorStart
    }

    /// Mean of the final hidden states over each row's pooled positions: [B, C].
    public func pool(final: [Float], length: Int, pooled: [Range<Int>]) -> [Float] {
        let C = width
        var out = [Float](repeating: 0, count: pooled.count * C)
        for (b, range) in pooled.enumerated() {
            let scale = 1 / Float(range.count)
            for t in range {
                let base = (b * length + t) * C
                for c in 0..<C { out[b * C + c] += final[base + c] }
            }
            if range.count > 1 { for c in 0..<C { out[b * C + c] *= scale } }
        }
        return out
    }

    /// The gradient of the final hidden states given the gradient of the pooled vectors (the
    /// transpose of `pool`): spread evenly over the pooled positions, zero elsewhere.
    public func unpool(dPooled: [Float], length: Int, pooled: [Range<Int>]) -> [Float] {
        let C = width
        var out = [Float](repeating: 0, count: pooled.count * length * C)
        for (b, range) in pooled.enumerated() {
            let scale = 1 / Float(range.count)
            for t in range {
                let base = (b * length + t) * C
                for c in 0..<C { out[base + c] = dPooled[b * C + c] * scale }
            }
        }
        return out
    }

    /// logits[b, k] = bias[k] + sum_c W[k, c] * x[b, c]
    public func logits(pooled: [Float], parameters: [Float]) -> [Float] {
        let C = width, K = numClasses, B = pooled.count / C
        var out = [Float](repeating: 0, count: B * K)
        parameters.withUnsafeBufferPointer { p in
            pooled.withUnsafeBufferPointer { x in
                for b in 0..<B {
                    for k in 0..<K {
                        var s: Float = 0
                        let w = weightOffset + k * C
                        for c in 0..<C { s += p[w + c] * x[b * C + c] }
                        out[b * K + k] = s + p[biasOffset + k]
                    }
                }
                // LoRA: + alpha * (x A) B
                if let l = lora {
                    for b in 0..<B {
                        let u = loraProjection(x, row: b, p)
                        for k in 0..<K {
                            var s: Float = 0
                            for j in 0..<l.rank { s += u[j] * p[l.bOffset + j * K + k] }
                            out[b * K + k] += l.alpha * s
                        }
                    }
                }
            }
        }
        return out
    }

    /// u = x[row] A ([rank]) for the head's LoRA adapter.
    func loraProjection(_ x: UnsafeBufferPointer<Float>, row b: Int, _ p: UnsafeBufferPointer<Float>) -> [Float] {
        guard let l = lora else { return [] }
        var u = [Float](repeating: 0, count: l.rank)
        for c in 0..<width {
            let xc = x[b * width + c], a = l.aOffset + c * l.rank
            for j in 0..<l.rank { u[j] += xc * p[a + j] }
        }
        return u
    }

    /// Mean cross-entropy over the batch (PyTorch's `cross_entropy`), its gradient w.r.t. the
    /// logits, and how many rows the argmax gets right.
    public func crossEntropy(logits: [Float], labels: [Int]) -> (loss: Float, dLogits: [Float], correct: Int) {
        let K = numClasses, B = labels.count
        var total: Float = 0
        var correct = 0
        var d = [Float](repeating: 0, count: B * K)
        for b in 0..<B {
            let row = Array(logits[(b * K)..<((b + 1) * K)])
            let probs = softmax(row)
            total += -Float(log(Double(max(probs[labels[b]], Float.leastNormalMagnitude))))
            if argmax(row) == labels[b] { correct += 1 }
            for k in 0..<K { d[b * K + k] = (probs[k] - (k == labels[b] ? 1 : 0)) / Float(B) }
        }
        return (total / Float(B), d, correct)
    }

    /// Adds the head's parameter gradients into `gradients` and returns the gradient of the pooled vectors.
    public func backward(pooled: [Float], dLogits: [Float], parameters: [Float], gradients: inout [Float]) -> [Float] {
        let C = width, K = numClasses, B = pooled.count / C
        var dPooled = [Float](repeating: 0, count: B * C)
        for b in 0..<B {
            for k in 0..<K {
                let g = dLogits[b * K + k]
                gradients[biasOffset + k] += g
                let w = weightOffset + k * C
                for c in 0..<C {
                    gradients[w + c] += g * pooled[b * C + c]
                    dPooled[b * C + c] += g * parameters[w + c]
                }
            }
        }
        if let l = lora {
            // dB += alpha u^T g; du = alpha g B^T; dA += x^T du; dx += du A^T
            parameters.withUnsafeBufferPointer { p in
                pooled.withUnsafeBufferPointer { x in
                    for b in 0..<B {
                        let u = loraProjection(x, row: b, p)
                        var du = [Float](repeating: 0, count: l.rank)
                        for j in 0..<l.rank {
                            for k in 0..<K {
                                let g = dLogits[b * K + k]
                                gradients[l.bOffset + j * K + k] += l.alpha * u[j] * g
                                du[j] += l.alpha * g * p[l.bOffset + j * K + k]
                            }
                        }
                        for c in 0..<C {
                            let a = l.aOffset + c * l.rank
                            var dx: Float = 0
                            for j in 0..<l.rank {
                                gradients[a + j] += x[b * C + c] * du[j]
                                dx += du[j] * p[a + j]
                            }
                            dPooled[b * C + c] += dx
                        }
                    }
                }
            }
        }
        return dPooled
    }
}

/// Numerically stable softmax (computed in Double, returned as Float).
public func softmax(_ x: [Float]) -> [Float] {
    let m = x.max() ?? 0
    let e = x.map { exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
}

/// Index of the largest value; the first one on ties, like `torch.argmax`.
public func argmax(_ x: [Float]) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

import Foundation
import GPT2

/// A small seeded generator (xoshiro256**, seeded through SplitMix64) whose whole state is four
/// integers, so a resumable training state can store it and continue the same sequence.
/// It does not reproduce PyTorch's Mersenne Twister: the batches differ from the book's, not the method.
public struct SeededGenerator: RandomNumberGenerator, Codable, Equatable, Sendable {
    public var state: [UInt64]

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = (state[3] << 45) | (state[3] >> 19)
        return result
    }

    /// A uniformly random permutation of 0..<n (Fisher-Yates with unbiased bounded draws).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(UInt64.random(in: 0...UInt64(i), using: &self))
            p.swapAt(i, j)
        }
        return p
    }

    /// A uniform Float in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
}

/// PyTorch's `torch.optim.AdamW` (betas 0.9/0.999, eps 1e-8, no amsgrad), over one contiguous
/// range of the flat parameter buffer. Weight decay applies to every trained parameter, biases
/// and LayerNorm weights included, as the book's `AdamW(model.parameters(), weight_decay=0.1)` does.
public struct AdamW: Sendable {
    public var learningRate: Float
    public var weightDecay: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public let range: Range<Int>
    public var m: [Float]
    public var v: [Float]
    public var step = 0

    public init(range: Range<Int>, learningRate: Float, weightDecay: Float) {
        self.range = range
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: range.count)
        v = [Float](repeating: 0, count: range.count)
    }

    public mutating func update(parameters: inout [Float], gradients: [Float]) {
        step += 1
        let rule = AdamWStep(step: step, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
                             weightDecay: weightDecay)
        let lo = range.lowerBound, n = range.count
        precondition(parameters.count >= range.upperBound && gradients.count >= range.upperBound && m.count == n && v.count == n)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                m.withUnsafeMutableBufferPointer { m in
                    v.withUnsafeMutableBufferPointer { v in
                        rule.apply(parameters: p.baseAddress! + lo, gradients: g.baseAddress! + lo, m: m.baseAddress!,
                                   v: v.baseAddress!, count: n)
                    }
                }
            }
        }
    }
}

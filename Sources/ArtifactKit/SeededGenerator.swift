import Foundation

/// The one seeded random generator of the project: xoshiro256** (Blackman & Vigna,
/// https://prng.di.unimi.it/) with its 256-bit state filled from the seed by SplitMix64, as its
/// authors recommend. Same seed, same numbers, on every platform; the whole state is four
/// integers, so a resumable training state stores it (as `{"state": [s0, s1, s2, s3]}`) and
/// continues the same sequence.
///
/// It is NOT PyTorch's Mersenne Twister: weights drawn here have the distributions of
/// `torch.manual_seed(s); GPTModel(cfg)` but not the same numbers, and shuffled batches differ
/// from the book's, not the method. Used for random initialisation, LoRA adapters, dropout
/// masks, sampling and the training loops' shuffles.
public struct SeededGenerator: RandomNumberGenerator, Codable, Equatable, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// Starts from a raw state (for known-answer tests against the reference C code).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
    }

    /// The raw state, as stored in a resume state.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Uniform in [0, 1) with 24 random bits (dropout masks, sampling).
    @inline(__always)
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A uniform Float in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * nextUnitFloat()
    }

    /// Standard normal pairs by the Box-Muller transform (both outputs used).
    @inline(__always)
    public mutating func nextNormalPair() -> (Double, Double) {
        let u1 = 1.0 - nextUnit()  // (0, 1]: log stays finite
        let u2 = nextUnit()
        let r = (-2.0 * log(u1)).squareRoot()
        let theta = 2.0 * Double.pi * u2
        return (r * cos(theta), r * sin(theta))
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

    enum CodingKeys: String, CodingKey { case state }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let s = try c.decode([UInt64].self, forKey: .state)
        guard s.count == 4 else {
            throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "a generator state has 4 integers, found \(s.count)")
        }
        (s0, s1, s2, s3) = (s[0], s[1], s[2], s[3])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state, forKey: .state)
    }
}

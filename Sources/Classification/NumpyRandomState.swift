/// numpy's legacy `numpy.random.RandomState`: a Mersenne Twister (MT19937) seeded exactly as
/// `RandomState(seed)` seeds it, plus the few methods pandas' `DataFrame.sample` reaches.
///
/// The book shuffles and undersamples with `df.sample(..., random_state=123)`. pandas turns the
/// integer into `np.random.RandomState(123)` and calls `choice(n, size, replace=False)`, which
/// for the legacy generator is `permutation(n)[:size]`, a Fisher-Yates shuffle whose bounded
/// integers come from masked rejection sampling (`random_interval`). Reproducing the book's rows
/// therefore needs every one of those steps bit for bit; the tests compare against numpy.
public struct NumpyRandomState {
    private static let stateLength = 624
    private static let middle = 397

    private var key = [UInt32](repeating: 0, count: NumpyRandomState.stateLength)
    private var position = NumpyRandomState.stateLength

    /// `RandomState(seed)` for an integer seed in 0...2^32-1 (numpy's `mt19937_seed`, the
    /// reference `init_genrand`).
    public init(seed: UInt32) {
        var value = seed
        for i in 0..<Self.stateLength {
            key[i] = value
            value = 1_812_433_253 &* (value ^ (value >> 30)) &+ UInt32(i + 1)
        }
        position = Self.stateLength
    }

    /// `RandomState(np.array(seeds))` for a 1-D array of 32-bit seeds (the reference
    /// `init_by_array`, which numpy's `mt19937_init_by_array` follows).
    public init(seedArray: [UInt32]) {
        self.init(seed: 19_650_218)
        let n = Self.stateLength
        var i = 1, j = 0
        let count = max(1, seedArray.count)
        for _ in 0..<max(n, seedArray.count) {
            let mixed = (key[i - 1] ^ (key[i - 1] >> 30)) &* 1_664_525
            key[i] = (key[i] ^ mixed) &+ (seedArray.isEmpty ? 0 : seedArray[j]) &+ UInt32(j)
            i += 1; j += 1
            if i >= n { key[0] = key[n - 1]; i = 1 }
            if j >= count { j = 0 }
        }
        for _ in 0..<(n - 1) {
            let mixed = (key[i - 1] ^ (key[i - 1] >> 30)) &* 1_566_083_941
            key[i] = (key[i] ^ mixed) &- UInt32(i)
            i += 1
            if i >= n { key[0] = key[n - 1]; i = 1 }
        }
        key[0] = 0x8000_0000  // guarantees a non-zero state, as the reference does
        position = n
    }

    private mutating func regenerate() {
        let n = Self.stateLength, m = Self.middle
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7fff_ffff, matrixA: UInt32 = 0x9908_b0df
        for k in 0..<n {
            let y = (key[k] & upper) | (key[(k + 1) % n] & lower)
            key[k] = key[(k + m) % n] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : matrixA)
        }
        position = 0
    }

    /// The next raw 32-bit output (numpy's `next_uint32`, i.e. `genrand_int32` with tempering).
    public mutating func nextUInt32() -> UInt32 {
        if position >= Self.stateLength { regenerate() }
        var y = key[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// numpy's `next_uint64` for MT19937: two 32-bit outputs, the first in the high half.
    public mutating func nextUInt64() -> UInt64 {
        let high = UInt64(nextUInt32())
        return (high << 32) | UInt64(nextUInt32())
    }

    /// A uniform integer in 0...max by masked rejection (numpy's legacy `random_interval`):
    /// draw 32 bits when `max` fits in 32 bits, else 64, keep the smallest all-ones mask that
    /// covers `max`, and retry until the masked draw is not above `max`.
    public mutating func randomInterval(max: UInt64) -> UInt64 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4
        mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32
        if max <= 0xffff_ffff {
            while true {
                let value = UInt64(nextUInt32()) & mask
                if value <= max { return value }
            }
        } else {
            while true {
                let value = nextUInt64() & mask
                if value <= max { return value }
            }
        }
    }

    /// `RandomState.shuffle` on a 1-D array: Fisher-Yates from the last element down, swapping
    /// element i with `random_interval(i)`.
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, through: 1, by: -1) {
            let j = Int(randomInterval(max: UInt64(i)))
            values.swapAt(i, j)
        }
    }

    /// `RandomState.permutation(n)`: a shuffled `arange(n)`.
    public mutating func permutation(_ n: Int) -> [Int] {
        var values = Array(0..<max(0, n))
        shuffle(&values)
        return values
    }

    /// `RandomState.choice(n, size, replace=False)` without weights: `permutation(n)[:size]`.
    /// This is what `DataFrame.sample(n=size)` and `sample(frac=...)` call for an integer seed.
    public mutating func choiceWithoutReplacement(_ n: Int, size: Int) -> [Int] {
        precondition(size >= 0 && size <= n, "cannot take a larger sample than the population")
        return Array(permutation(n).prefix(size))
    }
}

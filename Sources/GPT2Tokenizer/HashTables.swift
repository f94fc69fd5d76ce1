/// Small open-addressing hash tables for the encoder's hot path. Swift's `Dictionary` would need
/// an `Array` key (an allocation per lookup) for byte strings and hashes with SipHash; these
/// tables take raw byte ranges and integer pairs instead.

/// Maps an ordered pair of token ids to the id of the token their bytes concatenate to.
///
/// In tiktoken a token's rank is its id, so the value is also the pair's merge rank.
struct PairRankTable {
    static let absent: Int32 = .max
    private var keys: [UInt64]
    private var values: [Int32]
    private let mask: Int
    private(set) var count = 0

    init(minimumCapacity: Int) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: .max, count: capacity)
        values = [Int32](repeating: PairRankTable.absent, count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        (UInt64(UInt32(bitPattern: left)) << 32) | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// Inserts unless the pair is present (the first insertion wins).
    mutating func insert(_ left: Int32, _ right: Int32, rank: Int32) {
        precondition(count * 2 < keys.count, "PairRankTable sized too small")
        let key = Self.key(left, right)
        var slot = Self.slot(key, mask)
        while keys[slot] != .max {
            if keys[slot] == key { return }
            slot = (slot + 1) & mask
        }
        keys[slot] = key
        values[slot] = rank
        count += 1
    }

    func withLookup<R>(_ body: (PairLookup) -> R) -> R {
        keys.withUnsafeBufferPointer { keyBuffer in
            values.withUnsafeBufferPointer { valueBuffer in
                body(PairLookup(keys: keyBuffer.baseAddress!, values: valueBuffer.baseAddress!, mask: mask))
            }
        }
    }
}

/// A borrowed read-only view of a `PairRankTable`, valid inside `withLookup`.
struct PairLookup {
    let keys: UnsafePointer<UInt64>
    let values: UnsafePointer<Int32>
    let mask: Int

    @inline(__always)
    func rank(_ left: Int32, _ right: Int32) -> Int32 {
        let key = PairRankTable.key(left, right)
        var slot = PairRankTable.slot(key, mask)
        while true {
            let found = keys[slot]
            if found == key { return values[slot] }
            if found == .max { return PairRankTable.absent }
            slot = (slot + 1) & mask
        }
    }
}

/// Maps byte strings (pre-tokenizer pieces) to their token ids.
///
/// Holds the whole vocabulary (a piece that is itself a token encodes as that token, as in
/// tiktoken) plus every piece encoded so far, so repeated words skip BPE entirely.
struct PieceTable {
    private struct Slot {
        var hash: UInt64 = 0
        var keyOffset: Int32 = 0
        var keyLength: Int32 = 0     // 0 marks an empty slot: pieces are never empty
        var valueOffset: Int32 = 0
        var valueCount: Int32 = 0
    }

    private var slots: [Slot]
    private var keyBytes: [UInt8] = []
    private var valueIDs: [Int32] = []
    private(set) var count = 0

    init(minimumCapacity: Int) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        slots = [Slot](repeating: Slot(), count: capacity)
    }

    /// Bytes held in the key and value arenas (used to bound the cache's memory).
    var storageBytes: Int { keyBytes.count + valueIDs.count * 4 + slots.count * MemoryLayout<Slot>.stride }

    @inline(__always)
    static func hash(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        // FNV-1a with a final mix: pieces are short (a few bytes), so a bytewise hash is cheap.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for index in 0..<length {
            hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 29
        hash = hash &* 0xBF58_476D_1CE4_E5B9
        hash ^= hash >> 32
        return hash
    }

    /// Appends the ids stored for `bytes[0..<length]` to `output` and returns true, or returns false.
    @inline(__always)
    func appendValue(for bytes: UnsafePointer<UInt8>, _ length: Int, hash: UInt64, to output: inout [Int]) -> Bool {
        slots.withUnsafeBufferPointer { slotBuffer in
            let mask = slotBuffer.count - 1
            var index = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slotBuffer[index]
                if slot.keyLength == 0 { return false }
                if slot.hash == hash && Int(slot.keyLength) == length && keyEquals(slot.keyOffset, bytes, length) {
                    valueIDs.withUnsafeBufferPointer { ids in
                        let first = Int(slot.valueOffset)
                        for position in first..<(first + Int(slot.valueCount)) { output.append(Int(ids[position])) }
                    }
                    return true
                }
                index = (index + 1) & mask
            }
        }
    }

    /// The single id stored for the key, if it maps to exactly one (used to look up vocabulary tokens).
    func singleValue(for bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = Self.hash(bytes.baseAddress!, bytes.count)
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[index]
            if slot.keyLength == 0 { return nil }
            if slot.hash == hash && Int(slot.keyLength) == bytes.count && keyEquals(slot.keyOffset, bytes.baseAddress!, bytes.count) {
                return slot.valueCount == 1 ? valueIDs[Int(slot.valueOffset)] : nil
            }
            index = (index + 1) & mask
        }
    }

    @inline(__always)
    private func keyEquals(_ offset: Int32, _ bytes: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        keyBytes.withUnsafeBufferPointer { stored in
            let base = Int(offset)
            for index in 0..<length where stored[base + index] != bytes[index] { return false }
            return true
        }
    }

    /// Adds a key that is not present yet.
    mutating func insert(_ bytes: UnsafePointer<UInt8>, _ length: Int, hash: UInt64, values: UnsafeBufferPointer<Int32>) {
        if (count + 1) * 4 > slots.count * 3 { grow() }
        let slot = Slot(hash: hash, keyOffset: Int32(keyBytes.count), keyLength: Int32(length),
                        valueOffset: Int32(valueIDs.count), valueCount: Int32(values.count))
        keyBytes.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
        valueIDs.append(contentsOf: values)
        place(slot)
        count += 1
    }

    private mutating func place(_ slot: Slot) {
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: slot.hash) & mask
        while slots[index].keyLength != 0 { index = (index + 1) & mask }
        slots[index] = slot
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        for slot in old where slot.keyLength != 0 { place(slot) }
    }
}

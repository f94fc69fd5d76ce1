/// The immutable tables shared by every encoder state: token bytes for decoding, single-byte
/// ids, pair ranks for merging, and the vocabulary as a piece table (the cache's starting point).
final class Vocabulary: @unchecked Sendable {
    /// Bytes of token `id` are `tokenBytes[tokenOffsets[id]..<tokenOffsets[id + 1]]`.
    let tokenBytes: [UInt8]
    let tokenOffsets: [Int]
    /// The id of each single-byte token, indexed by byte value.
    let byteToID: [Int32]
    let pairRanks: PairRankTable
    /// Every ordinary (non-special) token, keyed by its bytes.
    let tokens: PieceTable

    init(tokenBytes: [UInt8], tokenOffsets: [Int], byteToID: [Int32], pairRanks: PairRankTable, tokens: PieceTable) {
        self.tokenBytes = tokenBytes
        self.tokenOffsets = tokenOffsets
        self.byteToID = byteToID
        self.pairRanks = pairRanks
        self.tokens = tokens
    }
}

/// One thread's encoding state: the shared vocabulary plus a private cache of encoded pieces
/// and scratch buffers for merging. Copying it is cheap until the copy's cache is written
/// (copy-on-write), so each worker of a batch takes its own.
struct BytePairEncoder {
    let vocabulary: Vocabulary
    private var cache: PieceTable
    /// Above this many bytes the cache is reset to the bare vocabulary, so memory stays bounded
    /// on corpora with endless distinct pieces.
    var cacheByteLimit = 64 << 20
    /// Pieces longer than this are merged with a heap in O(n log n) instead of tiktoken's
    /// O(n^2) scan (both give identical results); long whitespace runs would otherwise dominate.
    /// Tests set it to 1 or `.max` to compare the two paths on every piece.
    var heapMergeThreshold = 128

    private var parts: [Int32] = []
    private var ranks: [Int32] = []
    private var heap: [UInt64] = []
    private var next: [Int32] = []
    private var previous: [Int32] = []

    /// Entries in the cache (the vocabulary's tokens included).
    var cachedPieceCount: Int { cache.count }

    init(vocabulary: Vocabulary) {
        self.vocabulary = vocabulary
        self.cache = vocabulary.tokens
    }

    /// Encodes valid UTF-8 as ordinary text (no special tokens), appending ids to `output`.
    mutating func encodeOrdinary(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [Int]) {
        guard bytes.count > 0 else { return }
        let vocabulary = self.vocabulary
        vocabulary.pairRanks.withLookup { pairs in
            vocabulary.byteToID.withUnsafeBufferPointer { byteToID in
                PreTokenizer.lowClasses.withUnsafeBufferPointer { lowBuffer in
                    let low = lowBuffer.baseAddress!
                    let base = bytes.baseAddress!
                    let count = bytes.count
                    var start = 0
                    while start < count {
                        let end = PreTokenizer.pieceEnd(bytes, from: start, count: count, low)
                        let length = end - start
                        if length == 1 {
                            output.append(Int(byteToID[Int(base[start])]))
                        } else {
                            encodePiece(base + start, length, pairs, byteToID, into: &output)
                        }
                        start = end
                    }
                }
            }
        }
    }

    @inline(__always)
    private mutating func encodePiece(_ piece: UnsafePointer<UInt8>, _ length: Int, _ pairs: PairLookup,
                                      _ byteToID: UnsafeBufferPointer<Int32>, into output: inout [Int]) {
        let hash = PieceTable.hash(piece, length)
        if cache.appendValue(for: piece, length, hash: hash, to: &output) { return }
        if length > heapMergeThreshold {
            mergeWithHeap(piece, length, pairs, byteToID)
        } else {
            mergeByScan(piece, length, pairs, byteToID)
        }
        for id in parts { output.append(Int(id)) }
        if cache.storageBytes > cacheByteLimit { cache = vocabulary.tokens }
        parts.withUnsafeBufferPointer { cache.insert(piece, length, hash: hash, values: $0) }
    }

    /// tiktoken's `byte_pair_merge`: start from single bytes and repeatedly merge the adjacent
    /// pair whose concatenation has the lowest rank (the leftmost on ties) until no adjacent
    /// pair forms a token. Leaves the result in `parts`.
    private mutating func mergeByScan(_ piece: UnsafePointer<UInt8>, _ length: Int, _ pairs: PairLookup,
                                      _ byteToID: UnsafeBufferPointer<Int32>) {
        parts.removeAll(keepingCapacity: true)
        ranks.removeAll(keepingCapacity: true)
        for index in 0..<length { parts.append(byteToID[Int(piece[index])]) }
        for index in 0..<(length - 1) { ranks.append(pairs.rank(parts[index], parts[index + 1])) }
        while parts.count > 1 {
            var best = PairRankTable.absent
            var bestIndex = -1
            for index in 0..<ranks.count where ranks[index] < best {
                best = ranks[index]
                bestIndex = index
            }
            if bestIndex < 0 { break }
            // A pair's rank is the id of the token it merges into.
            parts[bestIndex] = best
            parts.remove(at: bestIndex + 1)
            ranks.remove(at: bestIndex)
            if bestIndex > 0 { ranks[bestIndex - 1] = pairs.rank(parts[bestIndex - 1], parts[bestIndex]) }
            if bestIndex < ranks.count { ranks[bestIndex] = pairs.rank(parts[bestIndex], parts[bestIndex + 1]) }
        }
    }

    /// The same merge order as `mergeByScan`, found with a min-heap of (rank, start) candidates:
    /// ordering by start offset on equal ranks picks the leftmost pair, as the scan does.
    /// Stale candidates are recognised by recomputing their pair's rank when popped.
    private mutating func mergeWithHeap(_ piece: UnsafePointer<UInt8>, _ length: Int, _ pairs: PairLookup,
                                        _ byteToID: UnsafeBufferPointer<Int32>) {
        parts.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        for index in 0..<length {
            parts.append(byteToID[Int(piece[index])])   // token of the part starting at index
            next.append(Int32(index + 1))                // `length` marks the end
            previous.append(Int32(index - 1))            // -1 marks the start; -2 a merged-away part
        }
        for index in 0..<(length - 1) {
            let rank = pairs.rank(parts[index], parts[index + 1])
            if rank != PairRankTable.absent { heapPush(UInt64(rank) << 32 | UInt64(index)) }
        }
        while let top = heapPopMin() {
            let rank = Int32(truncatingIfNeeded: top >> 32)
            let start = Int(top & 0xFFFF_FFFF)
            guard previous[start] != -2 else { continue }
            let right = Int(next[start])
            guard right < length, pairs.rank(parts[start], parts[right]) == rank else { continue }
            parts[start] = rank
            previous[right] = -2
            let afterRight = Int(next[right])
            next[start] = Int32(afterRight)
            if afterRight < length { previous[afterRight] = Int32(start) }
            let left = Int(previous[start])
            if left >= 0 {
                let leftRank = pairs.rank(parts[left], parts[start])
                if leftRank != PairRankTable.absent { heapPush(UInt64(leftRank) << 32 | UInt64(left)) }
            }
            if afterRight < length {
                let rightRank = pairs.rank(parts[start], parts[afterRight])
                if rightRank != PairRankTable.absent { heapPush(UInt64(rightRank) << 32 | UInt64(start)) }
            }
        }
        var result = [Int32]()
        var index = 0
        while index < length {
            result.append(parts[index])
            index = Int(next[index])
        }
        parts = result
    }

    private mutating func heapPush(_ value: UInt64) {
        heap.append(value)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent] <= heap[child] { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func heapPopMin() -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= heap.count { break }
            var smallest = left
            if left + 1 < heap.count && heap[left + 1] < heap[left] { smallest = left + 1 }
            if heap[parent] <= heap[smallest] { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

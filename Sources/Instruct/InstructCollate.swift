/// A padded batch of instruction rows: `inputs` and `targets` are row-major `batchSize x seqLen`.
/// Targets equal to the ignore index (-100 by default) take no part in the loss.
public struct InstructionBatch: Equatable, Sendable {
    public var inputs: [Int32]
    public var targets: [Int32]
    public var batchSize: Int
    public var seqLen: Int

    public init(inputs: [Int32], targets: [Int32], batchSize: Int, seqLen: Int) {
        precondition(inputs.count == batchSize * seqLen && targets.count == batchSize * seqLen)
        self.inputs = inputs
        self.targets = targets
        self.batchSize = batchSize
        self.seqLen = seqLen
    }

    /// Row `b` of the inputs.
    public func inputs(row b: Int) -> ArraySlice<Int32> { inputs[(b * seqLen)..<((b + 1) * seqLen)] }
    /// Row `b` of the targets.
    public func targets(row b: Int) -> ArraySlice<Int32> { targets[(b * seqLen)..<((b + 1) * seqLen)] }

    /// Number of targets that count in the loss (not the ignore index).
    public func countedTargets(ignoreIndex: Int = -100) -> Int {
        targets.reduce(0) { $0 + ($1 == Int32(ignoreIndex) ? 0 : 1) }
    }
}

/// The chapter-7 collate function.
///
/// For every row: append one `padTokenID` (<|endoftext|>, so the model learns to stop), pad with
/// `padTokenID` to the longest row of the batch + 1, and take inputs = padded[0..<L-1],
/// targets = padded[1..<L]. In the targets, every `padTokenID` after the first is replaced by
/// `ignoreIndex`, so only the first end-of-text token is learned. With `responseSpans`
/// (exercise 7.2, generalized to several responses per row), target t, which is token t+1 of the
/// row, also becomes `ignoreIndex` unless that token lies in one of the row's spans or beyond the
/// row (the end-of-text): the loss covers only the responses and the end token. Finally both are
/// cut to `allowedMaxLength` columns (nil: no cut). The order of these steps is the book's: the
/// cut comes last, so a cut row may lose its end-of-text target.
///
/// - Precondition: `rows` is non-empty, `allowedMaxLength` (if any) is positive, and
///   `responseSpans` (if any) has one list per row.
public func collateInstructionBatch(_ rows: [[Int]], padTokenID: Int = 50256, ignoreIndex: Int = -100,
                                    allowedMaxLength: Int? = 1024, responseSpans: [[Range<Int>]]?) -> InstructionBatch {
    precondition(!rows.isEmpty, "collateInstructionBatch needs at least one row")
    precondition(allowedMaxLength.map { $0 > 0 } ?? true, "allowedMaxLength must be positive")
    precondition(responseSpans.map { $0.count == rows.count } ?? true, "one list of response spans per row")
    let paddedLength = rows.map { $0.count + 1 }.max()!
    let fullWidth = paddedLength - 1
    let seqLen = allowedMaxLength.map { min($0, fullWidth) } ?? fullWidth
    let pad = Int32(padTokenID), ignore = Int32(ignoreIndex)

    var inputs = [Int32](repeating: pad, count: rows.count * seqLen)
    var targets = [Int32](repeating: pad, count: rows.count * seqLen)
    for (b, row) in rows.enumerated() {
        // padded[i] = row[i] for i < row.count, else padTokenID; inputs[t] = padded[t], targets[t] = padded[t+1].
        func padded(_ i: Int) -> Int32 { i < row.count ? Int32(row[i]) : pad }
        let counted = responseSpans.map { countedTokens(row.count, spans: $0[b]) }
        var seenPadTarget = false
        for t in 0..<fullWidth {
            var target = padded(t + 1)
            // The book compares by value: any pad-valued target after the first is ignored.
            if target == pad {
                if seenPadTarget { target = ignore }
                seenPadTarget = true
            }
            if let counted, t + 1 < row.count, !counted[t + 1] { target = ignore }
            guard t < seqLen else { break }
            inputs[b * seqLen + t] = padded(t)
            targets[b * seqLen + t] = target
        }
    }
    return InstructionBatch(inputs: inputs, targets: targets, batchSize: rows.count, seqLen: seqLen)
}

/// Per token of a row of `length`, whether it lies in one of `spans`.
func countedTokens(_ length: Int, spans: [Range<Int>]) -> [Bool] {
    var counted = [Bool](repeating: false, count: length)
    for span in spans { for i in span.clamped(to: 0..<length) { counted[i] = true } }
    return counted
}

/// The book's exercise 7.2 in its own terms: `maskPromptLengths[r]` prompt tokens per row, the
/// rest of the row its response (`targets[:promptLength-1]` become the ignore index; a length of
/// 0 masks nothing).
public func collateInstructionBatch(_ rows: [[Int]], padTokenID: Int = 50256, ignoreIndex: Int = -100,
                                    allowedMaxLength: Int? = 1024, maskPromptLengths: [Int]? = nil) -> InstructionBatch {
    collateInstructionBatch(rows, padTokenID: padTokenID, ignoreIndex: ignoreIndex, allowedMaxLength: allowedMaxLength,
                            responseSpans: maskPromptLengths.map { lengths in zip(rows, lengths).map { [min($1, $0.count)..<$0.count] } })
}

/// Collates rows `indices` of a shard, masking everything but the responses when `maskPrompt`
/// is set (exercise 7.2; every assistant turn of a multi-turn chat counts).
public func collateInstructionBatch(_ shard: InstructionShard, indices: [Int], padTokenID: Int = 50256,
                                    ignoreIndex: Int = -100, allowedMaxLength: Int? = 1024,
                                    maskPrompt: Bool = false) -> InstructionBatch {
    collateInstructionBatch(indices.map { shard.row($0) }, padTokenID: padTokenID, ignoreIndex: ignoreIndex,
                            allowedMaxLength: allowedMaxLength,
                            responseSpans: maskPrompt ? indices.map { shard.responseSpans(row: $0) } : nil)
}

import ArtifactKit
import Foundation
import GPT2Tokenizer

/// Token rows of some records plus, per row, the spans of its response tokens.
public struct TokenizedInstructions: Equatable, Sendable {
    public var rows: [[Int]]
    /// Per row, the token ranges of its responses: each span runs from `encode(text before the
    /// response).count` to `encode(text through the response).count` (the book's instruction
    /// length for a single response, exercise 7.2).
    public var responseSpans: [[Range<Int>]]
    /// Rows (0-based within this list) where the encoding of the text before some span boundary
    /// is not a prefix of the row's tokens, so that boundary is approximate. BPE merges never
    /// cross the pre-tokenizer's boundaries, and every Alpaca/Phi-3 response starts with a newline,
    /// so this is expected only for text that ends in whitespace; none of the book's 1,100
    /// entries does (checked against tiktoken in both styles).
    public var promptNotPrefix: [Int]

    /// Per row, the number of tokens before its first response (the row's length without one).
    public var promptLengths: [Int] {
        zip(rows, responseSpans).map { $1.first?.lowerBound ?? $0.count }
    }
}

/// Renders each record with the template and encodes it; see `TokenizedInstructions`.
///
/// - Parameters:
///   - places: per record, how messages name it ("entry 3", "line 7"); default "entry i".
///   - encode: GPT-2 BPE that rejects special tokens (the texts are plain text; an `<|endoftext|>`
///     inside a record would be an error, as with tiktoken's default `encode`).
public func tokenizeInstructions(_ records: [InstructionRecord], style: PromptStyle, places: [String]? = nil,
                                 source: String = "instruction data",
                                 encode: (String) throws -> [Int]) throws -> TokenizedInstructions {
    var result = TokenizedInstructions(rows: [], responseSpans: [], promptNotPrefix: [])
    result.rows.reserveCapacity(records.count)
    result.responseSpans.reserveCapacity(records.count)
    for (i, record) in records.enumerated() {
        let place = places?[i] ?? "entry \(i)"
        do {
            let (row, spans, exact) = try tokenizeSegments(style.segments(record), encode: encode)
            if !exact { result.promptNotPrefix.append(i) }
            result.rows.append(row)
            result.responseSpans.append(spans)
        } catch {
            throw PipelineError("\(place) cannot be tokenized: \(error)", location: "\(source): \(place)",
                                hint: "the texts must be plain text without GPT-2 special tokens such as <|endoftext|>")
        }
    }
    return result
}

/// The tokens of the segments' concatenation, the response spans, and whether every boundary's
/// prefix encoding was a prefix of the row (else the spans are approximate, kept in order).
func tokenizeSegments(_ segments: [TemplateSegment], encode: (String) throws -> [Int]) throws -> ([Int], [Range<Int>], Bool) {
    let tokens = try encode(segments.map(\.text).joined())
    var exact = true
    // Token positions where the text flips between context and response: start, end, start, ...
    var bounds: [Int] = []
    var prefix = ""
    var inResponse = false
    for segment in segments {
        if segment.isResponse != inResponse {
            let prefixTokens = prefix.isEmpty ? [] : try encode(prefix)
            if !tokens.starts(with: prefixTokens) { exact = false }
            bounds.append(min(prefixTokens.count, tokens.count))
            inResponse = segment.isResponse
        }
        prefix += segment.text
    }
    if inResponse { bounds.append(tokens.count) }
    var spans: [Range<Int>] = []
    for k in stride(from: 0, to: bounds.count - 1, by: 2) {
        let lower = max(bounds[k], spans.last?.upperBound ?? 0)
        let span = lower..<max(lower, bounds[k + 1])
        if !span.isEmpty { spans.append(span) }
    }
    return (tokens, spans, exact)
}

/// `prepareInstructionDataset` with GPT-2 BPE loaded from `options.vocabDirectory`. Texts are
/// encoded like the book's `tokenizer.encode(full_text)`: special tokens are not allowed, so a
/// record containing `<|endoftext|>` is reported instead of silently becoming token 50256.
@discardableResult
public func prepareInstructionDataset(_ options: InstructionPrepareOptions) throws -> Manifest {
    let tokenizer = try GPT2BPETokenizer(directory: options.vocabDirectory)
    return try prepareInstructionDataset(options) { try tokenizer.encode($0, allowedSpecial: []) }
}

/// Decodes row `row` of a shard back into its pieces: the text before, in and between its
/// response spans, each marked as response or not (for `pipeline show`). With the book's data the
/// two pieces of a row are exactly `formatPrompt` and `formatResponse` of the entry.
public func describeRow(_ shard: InstructionShard, row: Int, tokenizer: GPT2BPETokenizer) throws -> [TemplateSegment] {
    guard (0..<shard.rowCount).contains(row) else {
        throw PipelineError("row \(row) does not exist: the shard has \(shard.rowCount) rows (0..<\(shard.rowCount))")
    }
    let tokens = shard.row(row)
    var pieces: [TemplateSegment] = []
    var at = 0
    for span in shard.responseSpans(row: row) {
        if span.lowerBound > at { pieces.append(TemplateSegment(try tokenizer.decode(Array(tokens[at..<span.lowerBound])), isResponse: false)) }
        pieces.append(TemplateSegment(try tokenizer.decode(Array(tokens[span])), isResponse: true))
        at = span.upperBound
    }
    if at < tokens.count || pieces.isEmpty { pieces.append(TemplateSegment(try tokenizer.decode(Array(tokens[at...])), isResponse: false)) }
    return pieces
}

/// A short text view of a shard for `pipeline show`: version and counts, then the first `rows`
/// rows with their token counts and response spans and, when a tokenizer is given, the decoded
/// pieces (prompt / response).
public func instructionShardPreview(_ shard: InstructionShard, rows: Int = 3, tokenizer: GPT2BPETokenizer? = nil) -> String {
    let lengths = (0..<shard.rowCount).map { shard.length(row: $0) }
    let spanCount = shard.responseSpans.reduce(0) { $0 + $1.count }
    var lines = ["instruction shard (\(InstructionShard.magic) v\(shard.formatVersion)): \(shard.rowCount) rows, \(shard.totalTokens) tokens"
                 + (lengths.isEmpty ? "" : ", row length \(lengths.min()!)...\(lengths.max()!)") + ", \(spanCount) response spans"]
    for row in 0..<min(rows, shard.rowCount) {
        let spans = shard.responseSpans(row: row).map { "\($0.lowerBound)..<\($0.upperBound)" }
        lines.append("row \(row): \(shard.length(row: row)) tokens, response tokens \(spans.isEmpty ? "none" : spans.joined(separator: ", "))")
        if let tokenizer, let pieces = try? describeRow(shard, row: row, tokenizer: tokenizer) {
            lines += pieces.map { "  \($0.isResponse ? "response: " : "prompt:   ")\($0.text.debugDescription)" }
        } else {
            lines.append("  tokens: \(shard.tokens(row: row).prefix(24).map(String.init).joined(separator: " "))\(shard.length(row: row) > 24 ? " ..." : "")")
        }
    }
    return lines.joined(separator: "\n")
}

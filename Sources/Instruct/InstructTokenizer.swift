import ArtifactKit
import Foundation
import GPT2Tokenizer

/// `prepareInstructionDataset` with GPT-2 BPE loaded from `options.vocabDirectory`. Texts are
/// encoded like the book's `tokenizer.encode(full_text)`: special tokens are not allowed, so an
/// entry containing `<|endoftext|>` is reported by index instead of silently becoming token 50256.
@discardableResult
public func prepareInstructionDataset(_ options: InstructionPrepareOptions) throws -> Manifest {
    let tokenizer = try GPT2BPETokenizer(directory: options.vocabDirectory)
    return try prepareInstructionDataset(options) { try tokenizer.encode($0, allowedSpecial: []) }
}

/// Decodes row `row` of a shard back into its prompt and response text (for `pipeline show`).
/// The split is at the stored response start; with the book's data the two parts are exactly
/// `formatPrompt` and `formatResponse` of the entry.
public func describeRow(_ shard: InstructionShard, row: Int, tokenizer: GPT2BPETokenizer) throws -> (prompt: String, response: String) {
    guard (0..<shard.rowCount).contains(row) else {
        throw PipelineError("row \(row) does not exist: the shard has \(shard.rowCount) rows (0..<\(shard.rowCount))")
    }
    let tokens = shard.row(row)
    let start = shard.responseStart(row: row)
    return (try tokenizer.decode(Array(tokens[..<start])), try tokenizer.decode(Array(tokens[start...])))
}

/// A short text view of a shard for `pipeline show`: counts, then the first `rows` rows with
/// their token counts and, when a tokenizer is given, the decoded prompt and response.
public func instructionShardPreview(_ shard: InstructionShard, rows: Int = 3, tokenizer: GPT2BPETokenizer? = nil) -> String {
    let lengths = (0..<shard.rowCount).map { shard.length(row: $0) }
    var lines = ["instruction shard (\(InstructionShard.header.magic) v\(InstructionShard.header.version)): \(shard.rowCount) rows, \(shard.totalTokens) tokens"
                 + (lengths.isEmpty ? "" : ", row length \(lengths.min()!)...\(lengths.max()!)")]
    for row in 0..<min(rows, shard.rowCount) {
        lines.append("row \(row): \(shard.length(row: row)) tokens, response starts at token \(shard.responseStart(row: row))")
        if let tokenizer, let (prompt, response) = try? describeRow(shard, row: row, tokenizer: tokenizer) {
            lines.append("  prompt:   \(prompt.debugDescription)")
            lines.append("  response: \(response.debugDescription)")
        } else {
            lines.append("  tokens: \(shard.tokens(row: row).prefix(24).map(String.init).joined(separator: " "))\(shard.length(row: row) > 24 ? " ..." : "")")
        }
    }
    return lines.joined(separator: "\n")
}

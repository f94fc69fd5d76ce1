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

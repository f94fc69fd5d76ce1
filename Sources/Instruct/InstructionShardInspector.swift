import ArtifactKit
import Foundation
import GPT2Tokenizer

/// `prepare instruct` shards: row and token counts, and the first rows as prompt + response.
public struct InstructionShardInspector: ArtifactInspector {
    public init() {}

    public func canInspect(url: URL, magic: String?) -> Bool { magic == InstructionShard.header.magic }

    public func inspect(url: URL, rows: Int) throws -> String {
        let shard = try InstructionShard.read(from: url)
        return "file: \(url.path)\n" + instructionShardPreview(shard, rows: rows, tokenizer: GPT2BPETokenizer.forArtifact(at: url))
    }
}

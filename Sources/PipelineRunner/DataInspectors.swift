import ArtifactKit
import DataPrep
import Foundation
import GPT2Tokenizer

extension InspectorRegistry {
    /// The generic inspectors plus the decoders of this project's own artifacts: shards, safetensors
    /// checkpoints, frozen-trunk states and metrics.
    public static func full() -> InspectorRegistry {
        var registry = InspectorRegistry.standard()
        registry.register(MetricsInspector())
        registry.register(SafetensorsInspector())
        registry.register(TrunkStatesInspector())
        registry.register(InstructionShardInspector())
        registry.register(ClassificationShardInspector())
        return registry
    }
}

/// Finds the GPT-2 vocabulary a shard was made with, so rows can be shown as text: the
/// `encoder.json` input named in the manifest beside the shard, looked up relative to the
/// current directory and to each directory above the shard (the stage's working directory).
func tokenizerForShard(at url: URL) -> GPT2BPETokenizer? {
    let manifestURL = url.deletingLastPathComponent().appendingPathComponent(Manifest.fileName)
    guard let manifest = try? Manifest.read(from: manifestURL),
          let encoder = manifest.inputs.first(where: { $0.path.hasSuffix("encoder.json") }) else { return nil }
    var candidates = [URL(fileURLWithPath: encoder.path)]
    var dir = url.deletingLastPathComponent().standardizedFileURL
    while dir.path != "/" {
        candidates.append(dir.appendingPathComponent(encoder.path))
        dir = dir.deletingLastPathComponent()
    }
    for candidate in candidates where FileManager.default.fileExists(atPath: candidate.path) {
        if let tok = try? GPT2BPETokenizer(directory: candidate.deletingLastPathComponent()) { return tok }
    }
    return nil
}

/// `prepare classification` shards: header fields, class counts, and the first rows decoded.
struct ClassificationShardInspector: ArtifactInspector {
    func canInspect(url: URL, magic: String?) -> Bool { magic == ClassificationShard.header.magic }

    func inspect(url: URL, rows: Int) throws -> String {
        let shard = try ClassificationShard.read(from: url)
        var counts = [Int32: Int]()
        for label in shard.labels { counts[label, default: 0] += 1 }
        var lines = [
            "file:            \(url.path)",
            "format:          classification shard \(ClassificationShard.header.magic) v\(ClassificationShard.header.version)",
            "rows:            \(shard.rowCount)",
            "sequence length: \(shard.sequenceLength) (pad id \(shard.padTokenID))",
            "classes:         \(shard.numClasses) — " + counts.keys.sorted().map { "label \($0): \(counts[$0]!) rows" }.joined(separator: ", "),
            "real lengths:    \(shard.lengths.min() ?? 0)...\(shard.lengths.max() ?? 0) tokens",
            "",
        ]
        let tokenizer = tokenizerForShard(at: url)
        if tokenizer == nil { lines.append("(vocabulary not found: showing token ids only)") }
        for i in 0..<min(rows, shard.rowCount) {
            let real = shard.row(i).prefix(Int(shard.lengths[i])).map(Int.init)
            let text = (try? tokenizer?.decode(real)) ?? nil
            lines.append("row \(i): label \(shard.labels[i]), \(real.count) tokens + \(shard.sequenceLength - real.count) pad")
            lines.append("  " + (text.map { String(reflecting: $0) } ?? real.map(String.init).joined(separator: " ")))
        }
        return lines.joined(separator: "\n")
    }
}

/// `prepare instruct` shards: row and token counts, and the first rows as prompt + response.
struct InstructionShardInspector: ArtifactInspector {
    func canInspect(url: URL, magic: String?) -> Bool { magic == InstructionShard.header.magic }

    func inspect(url: URL, rows: Int) throws -> String {
        let shard = try InstructionShard.read(from: url)
        return "file: \(url.path)\n" + instructionShardPreview(shard, rows: rows, tokenizer: tokenizerForShard(at: url))
    }
}

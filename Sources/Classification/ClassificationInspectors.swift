import ArtifactKit
import Foundation
import GPT2Tokenizer

/// `prepare classification` shards: header fields, class counts, and the first rows decoded.
public struct ClassificationShardInspector: ArtifactInspector {
    public init() {}

    public func canInspect(url: URL, magic: String?) -> Bool { magic == ClassificationShard.header.magic }

    public func inspect(url: URL, rows: Int) throws -> String {
        let shard = try ClassificationShard.read(from: url)
        var counts = [Int: Int]()
        for label in shard.labels { counts[label, default: 0] += 1 }
        let names = labelNames(beside: url, numClasses: shard.numClasses)
        let label = { (id: Int) in names.map { "\($0[id]) (\(id))" } ?? "label \(id)" }
        var lines = [
            "file:            \(url.path)",
            "format:          classification shard \(ClassificationShard.header.magic) v\(ClassificationShard.header.version)",
            "rows:            \(shard.rowCount)",
            "sequence length: \(shard.sequenceLength) (pad id \(shard.padTokenID))",
            "classes:         \(shard.numClasses) — " + counts.keys.sorted().map { "\(label($0)): \(counts[$0]!) rows" }.joined(separator: ", "),
            "real lengths:    \(shard.lengths.min() ?? 0)...\(shard.lengths.max() ?? 0) tokens",
            "",
        ]
        let tokenizer = GPT2BPETokenizer.forArtifact(at: url)
        if tokenizer == nil { lines.append("(vocabulary not found: showing token ids only)") }
        for i in 0..<min(rows, shard.rowCount) {
            let real = shard.row(i).prefix(shard.lengths[i]).map(Int.init)
            let text = (try? tokenizer?.decode(real)) ?? nil
            lines.append("row \(i): \(label(shard.labels[i])), \(real.count) tokens + \(shard.sequenceLength - real.count) pad")
            lines.append("  " + (text.map { String(reflecting: $0) } ?? real.map(String.init).joined(separator: " ")))
        }
        return lines.joined(separator: "\n")
    }

    /// The class names of the prepared directory's manifest beside the shard, when it has one.
    func labelNames(beside url: URL, numClasses: Int) -> [String]? {
        let manifestURL = url.deletingLastPathComponent().appendingPathComponent(Manifest.fileName)
        guard let manifest = try? Manifest.read(from: manifestURL), manifest.format == ClassificationPreparer.manifestFormat else { return nil }
        let names = ClassificationDataset.labelNames(in: manifest, numClasses: numClasses)
        return names == (0..<numClasses).map(String.init) ? nil : names
    }
}

/// `trunk.bin` written by `train`: the frozen-layer states `evaluate` reuses (see `TrunkStatesFile`).
public struct TrunkStatesInspector: ArtifactInspector {
    public init() {}

    public func canInspect(url: URL, magic: String?) -> Bool { magic == TrunkStatesFile.header.magic }

    public func inspect(url: URL, rows: Int) throws -> String {
        let file = try TrunkStatesFile.open(url)
        let m = file.meta
        let what = m.kind == "hidden"
            ? "the hidden states entering block \(m.block.map(String.init) ?? "?") (the lowest trainable block), per row the positions the pooled output reads"
            : "the pooled final vector of each row (only the head trains)"
        var lines = [
            "file:     \(url.path)",
            "format:   frozen-trunk states \(TrunkStatesFile.header.magic) v\(TrunkStatesFile.header.version), \(TextFormat.bytes(file.fileSize)) (size matches the header)",
            "holds:    \(what)",
            "model:    \(m.model), width \(m.embDim)",
            "base:     \(m.base)",
            "frozen:   the first \(m.frozenParameters) parameters, sha256 \(m.frozenSHA256)",
            "pooling:  \(m.pooling)",
            "splits:",
        ]
        let table = m.splits.enumerated().map { i, s -> [String] in
            let stored = file.positions[i].reduce(0, +)
            return [s.name, String(s.rows), String(s.sequenceLength), String(stored), TextFormat.bytes(stored * m.embDim * 4),
                    String(s.shardSHA256.prefix(12))]
        }
        lines += TextFormat.table(["split", "rows", "length", "positions stored", "values", "shard sha256"], table)
            .split(separator: "\n").map { "  " + $0 }
        lines.append("(evaluate reads it when the checkpoint's frozen weights, block and pooling and the shards' sha256 match; otherwise it recomputes and says why)")
        return lines.joined(separator: "\n")
    }
}

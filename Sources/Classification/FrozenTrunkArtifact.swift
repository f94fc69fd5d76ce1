import ArtifactKit
import Foundation
import GPT2

/// Shares the frozen-trunk states between `train` and `evaluate` through `trunk.bin`
/// (`TrunkStatesFile`): `train` computes them once for the train, validation and test rows and
/// writes them; `evaluate` reads them back when they belong to its checkpoint and shards, so it
/// only runs the trainable top. Reading them back gives the numbers of recomputing them, bit for
/// bit (the states are stored as computed; `StageTests` checks the metrics and predictions).
public enum FrozenTrunkArtifact {
    /// How many leading floats of the parameter buffer the frozen states depend on: embeddings
    /// and the blocks below the lowest trainable one, or (head only) everything but the head.
    static func frozenParameterCount(_ model: ClassifierModel) -> Int {
        let layout = model.backend.layout
        if let k = model.startBlock { return layout.blockRange(k).lowerBound }
        return layout.spec(named: "out_head.weight")!.offset
    }

    static func frozenHash(_ model: ClassifierModel, count: Int) -> String {
        model.parameters.withUnsafeBytes { FileHash.sha256(of: UnsafeRawBufferPointer(rebasing: $0[0..<(count * 4)])) }
    }

    static func poolingKey(_ p: Pooling) -> String {
        "token_position=\(p.position.rawValue) average_embeddings=\(p.averageEmbeddings)"
    }

    /// Positions of each row the cache holds: the pooled vector (head only), else the positions
    /// the pooled output depends on (all of them without trimming).
    static func storedPositions(_ model: ClassifierModel, _ rows: LabeledRows) -> [Int] {
        rows.lengths.map { len in
            model.startBlock == nil ? 1
                : model.trimBatches ? model.pooling.neededLength(realLength: len, sequenceLength: rows.sequenceLength)
                : rows.sequenceLength
        }
    }

    /// Writes the caches of `splits` (all filled) to `url`.
    public static func write(model: ClassifierModel, splits: [DataSplit], shardHashes: [String: String], base: String,
                             to url: URL) throws {
        let C = model.config.embDim
        let count = frozenParameterCount(model)
        let meta = TrunkStatesFile.Meta(
            kind: model.startBlock == nil ? "pooled" : "hidden", block: model.startBlock, embDim: C, model: model.config.name,
            base: base, frozenParameters: count, frozenSHA256: frozenHash(model, count: count), pooling: poolingKey(model.pooling),
            splits: splits.map { .init(name: $0.name, rows: $0.rows.rowCount, sequenceLength: $0.rows.sequenceLength,
                                       shardSHA256: shardHashes[$0.name] ?? "") })
        let positions = splits.map { storedPositions(model, $0.rows) }
        let caches = splits.map { $0.cache! }
        try TrunkStatesFile.write(meta: meta, positions: positions, to: url) { s, r in
            let stride = model.startBlock == nil ? C : splits[s].rows.sequenceLength * C
            return caches[s].withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[(r * stride)..<(r * stride + positions[s][r] * C)]) }
        }
    }

    /// Fills the caches of `splits` from `url` when the file belongs to this model (same frozen
    /// weights, same lowest trainable block, same pooling) and these shards (same sha256, rows,
    /// lengths). Returns nil when it did, or why not (then nothing is filled).
    public static func load(from url: URL, model: ClassifierModel, splits: [DataSplit], shardHashes: [String: String]) -> String? {
        guard model.cacheIsExact else { return "nothing is frozen (trainable_layers \(model.trainable.rawValue))" }
        guard FileManager.default.fileExists(atPath: url.path) else { return "no \(url.lastPathComponent) in \(url.deletingLastPathComponent().path)" }
        let file: TrunkStatesFile
        do { file = try TrunkStatesFile.open(url) } catch { return "\(error)" }
        let m = file.meta, C = model.config.embDim
        let wantKind = model.startBlock == nil ? "pooled" : "hidden"
        guard m.kind == wantKind, m.block == model.startBlock else {
            return "it holds \(m.kind) states\(m.block.map { " entering block \($0)" } ?? ""); the checkpoint needs \(wantKind)\(model.startBlock.map { " entering block \($0)" } ?? "")"
        }
        guard m.embDim == C else { return "its states are \(m.embDim) wide, the model's \(C)" }
        guard m.pooling == poolingKey(model.pooling) else { return "it was made for \(m.pooling), the checkpoint uses \(poolingKey(model.pooling))" }
        var indices: [Int] = []
        for split in splits {
            guard let i = m.splits.firstIndex(where: { $0.name == split.name }) else { return "it has no \(split.name) rows" }
            let s = m.splits[i]
            guard s.rows == split.rows.rowCount, s.sequenceLength == split.rows.sequenceLength, s.shardSHA256 == shardHashes[split.name] else {
                return "its \(split.name) rows come from another shard (\(s.rows) rows of \(s.sequenceLength), sha256 \(s.shardSHA256.prefix(12))...; now \(split.rows.rowCount) of \(split.rows.sequenceLength), \(shardHashes[split.name]?.prefix(12) ?? "?")...)"
            }
            let needed = storedPositions(model, split.rows)
            guard zip(file.positions[i], needed).allSatisfy({ $0 >= $1 }) else { return "it stores fewer positions of the \(split.name) rows than the model reads" }
            indices.append(i)
        }
        let count = frozenParameterCount(model)
        guard m.frozenParameters == count, m.frozenSHA256 == frozenHash(model, count: count) else {
            return "the checkpoint's frozen weights differ from those the states were computed with (\(m.base))"
        }
        for (split, i) in zip(splits, indices) {
            let S = split.rows.sequenceLength, stride = model.startBlock == nil ? C : S * C
            let needed = storedPositions(model, split.rows)
            var cache = [Float](repeating: 0, count: split.rows.rowCount * stride)
            cache.withUnsafeMutableBufferPointer { dst in
                file.forEachRow(ofSplit: i) { r, values in
                    (dst.baseAddress! + r * stride).update(from: values.baseAddress!, count: needed[r] * C)
                }
            }
            split.cache = cache
        }
        return nil
    }
}

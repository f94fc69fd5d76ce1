import ArtifactKit
import Foundation

/// One split of the classification data in memory: padded token rows, their real lengths and labels.
/// `ClassificationShard` is its file format; tests build small ones directly.
public struct LabeledRows: Sendable, Equatable {
    /// Row-major [rowCount, sequenceLength] token ids.
    public var tokens: [Int32]
    public var labels: [Int]
    /// Real (unpadded) length of each row.
    public var lengths: [Int]
    public var sequenceLength: Int
    public var padTokenID: Int
    public var numClasses: Int

    public init(tokens: [Int32], labels: [Int], lengths: [Int], sequenceLength: Int, padTokenID: Int, numClasses: Int) {
        precondition(tokens.count == labels.count * sequenceLength && lengths.count == labels.count)
        self.tokens = tokens
        self.labels = labels
        self.lengths = lengths
        self.sequenceLength = sequenceLength
        self.padTokenID = padTokenID
        self.numClasses = numClasses
    }

    public var rowCount: Int { labels.count }

    public func row(_ i: Int) -> ArraySlice<Int32> {
        tokens[(i * sequenceLength)..<((i + 1) * sequenceLength)]
    }

    /// Checks token ids fit the model's vocabulary and labels fit the head.
    public func validate(vocabSize: Int, numClasses expected: Int, source: String) throws {
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocabSize }) {
            throw PipelineError("token id \(tokens[bad]) in row \(bad / sequenceLength) is outside the model's vocabulary of \(vocabSize)",
                                location: source, hint: "prepare the data with the tokenizer that matches the model")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= expected }) {
            throw PipelineError("label \(labels[bad]) in row \(bad) does not fit a head with \(expected) classes", location: source)
        }
        if let bad = lengths.firstIndex(where: { $0 < 0 || $0 > sequenceLength }) {
            throw PipelineError("row \(bad) has length \(lengths[bad]), outside 0...\(sequenceLength)", location: source,
                                hint: "rerun `prepare classification`")
        }
    }
}

/// The rows of one batch, cut to the positions the pooled output needs.
public struct Batch: Sendable {
    public var rows: [Int]
    /// Positions per row in this batch (the longest needed length of its rows).
    public var length: Int
    /// [rows.count, length] token ids.
    public var tokens: [Int32]
    public var labels: [Int]
    /// Positions pooled for each row.
    public var pooled: [Range<Int>]
}

extension LabeledRows {
    /// Assembles the batch of `rows`, trimmed to what `pooling` needs when `trim` is set.
    public func batch(_ rows: [Int], pooling: Pooling, trim: Bool) -> Batch {
        let length = trim ? rows.map { pooling.neededLength(realLength: lengths[$0], sequenceLength: sequenceLength) }.max() ?? 1
                          : sequenceLength
        var toks = [Int32](repeating: 0, count: rows.count * length)
        for (b, r) in rows.enumerated() {
            for t in 0..<length { toks[b * length + t] = tokens[r * sequenceLength + t] }
        }
        return Batch(rows: rows, length: length, tokens: toks, labels: rows.map { labels[$0] },
                     pooled: rows.map { pooling.pooledPositions(realLength: lengths[$0], batchLength: length) })
    }

    /// The book's evaluation loader order: rows in file order, batches of `batchSize`, the last one
    /// possibly smaller (DataLoader(shuffle=False, drop_last=False)).
    public func sequentialBatches(batchSize: Int) -> [[Int]] {
        stride(from: 0, to: rowCount, by: batchSize).map { Array($0..<min($0 + batchSize, rowCount)) }
    }
}

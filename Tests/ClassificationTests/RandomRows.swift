import ArtifactKit
import Classification

extension LabeledRows {
    /// `count` rows of 1...S random real tokens in 0..<`vocab`, padded with `pad` to S positions;
    /// the label is 1 when `marker` occurs among the real tokens, else 0. Seeded: the same rows every run.
    static func random(count: Int, seed: UInt64, sequenceLength S: Int, vocab: Int, marker: Int32, pad: Int32) -> LabeledRows {
        var g = SeededGenerator(seed: seed)
        var tokens: [Int32] = [], labels: [Int] = [], lengths: [Int] = []
        for _ in 0..<count {
            let len = Int(g.next() % UInt64(S)) + 1
            var row = (0..<len).map { _ in Int32(g.next() % UInt64(vocab)) }
            labels.append(row.contains(marker) ? 1 : 0)
            row += [Int32](repeating: pad, count: S - len)
            tokens += row
            lengths.append(len)
        }
        return LabeledRows(tokens: tokens, labels: labels, lengths: lengths, sequenceLength: S, padTokenID: Int(pad), numClasses: 2)
    }
}

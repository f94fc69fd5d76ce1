import ArtifactKit
import Foundation

/// Precision, recall and F1 of one class (one-vs-rest), or their average over the classes.
/// A ratio with a zero denominator is 0 (scikit-learn's zero_division=0).
public struct ClassScores: Codable, Equatable, Sendable {
    public var precision: Double
    public var recall: Double
    public var f1: Double

    public init(precision: Double, recall: Double, f1: Double) {
        (self.precision, self.recall, self.f1) = (precision, recall, f1)
    }

    /// Class `c`'s scores from the confusion matrix [actual][predicted].
    init(confusion m: [[Int]], class c: Int) {
        let tp = m[c][c], predicted = m.map { $0[c] }.reduce(0, +), actual = m[c].reduce(0, +)
        precision = predicted == 0 ? 0 : Double(tp) / Double(predicted)
        recall = actual == 0 ? 0 : Double(tp) / Double(actual)
        f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
    }

    /// The mean of `scores` weighted by `weights` (all 1: the macro average; the supports: the weighted one).
    init(averaging scores: [ClassScores], weights: [Double]) {
        let total = weights.reduce(0, +)
        func mean(_ v: (ClassScores) -> Double) -> Double {
            total == 0 ? 0 : zip(scores, weights).map { v($0) * $1 }.reduce(0, +) / total
        }
        self.init(precision: mean(\.precision), recall: mean(\.recall), f1: mean(\.f1))
    }
}

/// One class's row of the per-class report.
public struct ClassReport: Codable, Equatable, Sendable {
    public var name: String
    public var support: Int
    public var precision: Double
    public var recall: Double
    public var f1: Double
}

/// Classification metrics of one split: the book's loss and accuracy, the N x N confusion matrix,
/// precision / recall / F1 of each class with their macro and weighted (by support) averages as
/// scikit-learn's `precision_recall_fscore_support`, and, for two classes only (the book's binary
/// report), the counts and scores of the positive class (spam = 1); with more classes those
/// fields are nil and left out of metrics.json, since no class is "the" positive one.
public struct SplitMetrics: Codable, Equatable, Sendable {
    public var rows: Int
    /// The book's `calc_loss_loader`: mean of the batch-mean cross-entropy over batches in file order.
    public var loss: Double
    public var accuracy: Double
    /// confusion[actual][predicted], classes in id order (`classes[i].name` names row and column i).
    public var confusion: [[Int]]
    public var classes: [ClassReport]
    public var macro: ClassScores
    public var weighted: ClassScores
    public var positiveClass: Int?
    public var truePositives: Int?
    public var falsePositives: Int?
    public var falseNegatives: Int?
    public var trueNegatives: Int?
    /// The positive class's precision, recall and F1 (two classes only).
    public var precision: Double?
    public var recall: Double?
    public var f1: Double?

    enum CodingKeys: String, CodingKey {
        case rows, loss, accuracy, confusion, classes, macro, weighted, positiveClass = "positive_class",
             truePositives = "true_positives", falsePositives = "false_positives", falseNegatives = "false_negatives",
             trueNegatives = "true_negatives", precision, recall, f1
    }

    /// `classNames` label the classes (default: their ids).
    public init(labels: [Int], predicted: [Int], numClasses: Int, loss: Double, positiveClass: Int = 1, classNames: [String]? = nil) {
        precondition(labels.count == predicted.count)
        var m = [[Int]](repeating: [Int](repeating: 0, count: numClasses), count: numClasses)
        for (a, p) in zip(labels, predicted) { m[a][p] += 1 }
        let names = classNames ?? (0..<numClasses).map(String.init)
        let scores = (0..<numClasses).map { ClassScores(confusion: m, class: $0) }
        let support = m.map { $0.reduce(0, +) }
        classes = (0..<numClasses).map { c in
            ClassReport(name: names[c], support: support[c], precision: scores[c].precision, recall: scores[c].recall, f1: scores[c].f1)
        }
        macro = ClassScores(averaging: scores, weights: scores.map { _ in 1 })
        weighted = ClassScores(averaging: scores, weights: support.map(Double.init))
        let correct = (0..<numClasses).map { m[$0][$0] }.reduce(0, +)
        rows = labels.count
        self.loss = loss
        accuracy = labels.isEmpty ? 0 : Double(correct) / Double(labels.count)
        confusion = m
        guard numClasses == 2 else { return }
        self.positiveClass = positiveClass
        let tp = m[positiveClass][positiveClass]
        let fp = m.map { $0[positiveClass] }.reduce(0, +) - tp
        let fn = support[positiveClass] - tp
        (truePositives, falsePositives, falseNegatives) = (tp, fp, fn)
        trueNegatives = labels.count - tp - fp - fn
        (precision, recall, f1) = (scores[positiveClass].precision, scores[positiveClass].recall, scores[positiveClass].f1)
    }
}

/// The book's loss over a whole split from per-row logits: batches of `batchSize` rows in file
/// order (the last one possibly smaller), mean of the batch means.
public func bookLoss(logits: [[Float]], labels: [Int], batchSize: Int, head: ClassifierHead) -> Double {
    var sum = 0.0, batches = 0
    for start in stride(from: 0, to: labels.count, by: batchSize) {
        let end = min(start + batchSize, labels.count)
        sum += Double(head.crossEntropy(logits: logits[start..<end].flatMap { $0 }, labels: Array(labels[start..<end])).loss)
        batches += 1
    }
    return batches == 0 ? .nan : sum / Double(batches)
}

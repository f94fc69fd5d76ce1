import ArtifactKit
import Foundation

/// Classification metrics of one split: the book's loss and accuracy plus the confusion matrix and
/// precision / recall / F1 of the positive class (spam = 1).
public struct SplitMetrics: Codable, Equatable, Sendable {
    public var rows: Int
    /// The book's `calc_loss_loader`: mean of the batch-mean cross-entropy over batches in file order.
    public var loss: Double
    public var accuracy: Double
    /// confusion[actual][predicted]
    public var confusion: [[Int]]
    public var positiveClass: Int
    public var truePositives: Int
    public var falsePositives: Int
    public var falseNegatives: Int
    public var trueNegatives: Int
    /// tp / (tp + fp); 0 when nothing was predicted positive (scikit-learn's zero_division=0).
    public var precision: Double
    /// tp / (tp + fn); 0 when there are no positive rows.
    public var recall: Double
    /// Harmonic mean of precision and recall; 0 when both are 0.
    public var f1: Double

    enum CodingKeys: String, CodingKey {
        case rows, loss, accuracy, confusion, positiveClass = "positive_class", truePositives = "true_positives",
             falsePositives = "false_positives", falseNegatives = "false_negatives", trueNegatives = "true_negatives",
             precision, recall, f1
    }

    public init(labels: [Int], predicted: [Int], numClasses: Int, loss: Double, positiveClass: Int = 1) {
        precondition(labels.count == predicted.count)
        var m = [[Int]](repeating: [Int](repeating: 0, count: numClasses), count: numClasses)
        for (a, p) in zip(labels, predicted) { m[a][p] += 1 }
        let tp = m[positiveClass][positiveClass]
        let fp = (0..<numClasses).filter { $0 != positiveClass }.map { m[$0][positiveClass] }.reduce(0, +)
        let fn = (0..<numClasses).filter { $0 != positiveClass }.map { m[positiveClass][$0] }.reduce(0, +)
        let correct = (0..<numClasses).map { m[$0][$0] }.reduce(0, +)
        rows = labels.count
        self.loss = loss
        accuracy = labels.isEmpty ? 0 : Double(correct) / Double(labels.count)
        confusion = m
        self.positiveClass = positiveClass
        truePositives = tp
        falsePositives = fp
        falseNegatives = fn
        trueNegatives = labels.count - tp - fp - fn
        precision = tp + fp == 0 ? 0 : Double(tp) / Double(tp + fp)
        recall = tp + fn == 0 ? 0 : Double(tp) / Double(tp + fn)
        f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
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

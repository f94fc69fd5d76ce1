import ArtifactKit
import Foundation

/// `--balance`: what happens to the class sizes before splitting.
public enum BalanceMode: String, Codable, CaseIterable, Sendable {
    /// Every class larger than the smallest is sampled down to its size (the book's ham undersampling).
    case undersample
    /// All rows are kept.
    case none
}

/// The book's balanced train/validation/test split of chapter 6, row for row, generalized to any
/// number of classes:
///
///     num_spam = df[df["Label"] == "spam"].shape[0]
///     ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
///     balanced_df = pd.concat([ham_subset, df[df["Label"] == "spam"]])
///     df = balanced_df.sample(frac=1, random_state=123).reset_index(drop=True)
///     train_end = int(len(df) * train_frac)
///     validation_end = train_end + int(len(df) * validation_frac)
///
/// Each `sample` call builds a fresh `RandomState(seed)`, so the same seed is used again and again.
/// With `undersample`, each class (in id order) larger than the smallest is sampled down to the
/// smallest's size, the smallest kept in file order, and the classes concatenated in id order; with
/// `none` every row is kept. With `stratify`, each class's rows (in shuffled order) are cut by the
/// fractions separately, so every split has the classes in the same proportions. `limit` first
/// keeps a seeded random subset of that many rows (in file order). Rows whose split the input gave
/// (`--train/--validation/--test` files, `--split-column`) keep it; see `givenSplits`.
public struct BookSplit {
    public var train: [LabeledText]
    public var validation: [LabeledText]
    public var test: [LabeledText]
    /// Rows per class (by id) after balancing.
    public var balancedCounts: [Int]
    /// Rows left after `--limit` (all of them without it).
    public var limitedCount: Int

    public struct Options: Equatable, Sendable {
        public var seed: UInt32 = 123
        public var trainFraction = 0.7
        public var validationFraction = 0.1
        public var balance = BalanceMode.undersample
        public var stratify = false
        public var limit: Int?
        public init() {}
    }

    public init(rows: [LabeledText], seed: UInt32, trainFraction: Double, validationFraction: Double) throws {
        var o = Options()
        (o.seed, o.trainFraction, o.validationFraction) = (seed, trainFraction, validationFraction)
        try self.init(rows: rows, labelNames: SpamLabels.names, options: o)
    }

    public init(rows all: [LabeledText], labelNames: [String], options o: Options) throws {
        try Self.checkFractions(o)
        let rows = try Self.limited(all, o)
        limitedCount = rows.count
        let parts: [[LabeledText]]
        if rows.contains(where: { $0.split != nil }) {
            parts = try Self.givenSplits(rows, labelNames: labelNames, o)
        } else {
            let balanced = try Self.balanced(rows, labelNames: labelNames, o)
            let shuffled = Self.shuffled(balanced, seed: o.seed)
            parts = o.stratify ? Self.stratifiedCut(shuffled, classes: labelNames.count, o) : Self.cut(shuffled, o)
        }
        try Self.checkTrainHasEveryClass(parts, labelNames: labelNames, balanced: parts.flatMap { $0 })
        (train, validation, test) = (parts[0], parts[1], parts[2])
        balancedCounts = (0..<labelNames.count).map { c in parts.joined().filter { $0.label == c }.count }
    }

    /// `sample(frac=1, random_state=seed)`: frac=1 -> size = round(1 * n) = n.
    private static func shuffled(_ rows: [LabeledText], seed: UInt32) -> [LabeledText] {
        var rng = NumpyRandomState(seed: seed)
        return rng.choiceWithoutReplacement(rows.count, size: rows.count).map { rows[$0] }
    }

    /// Splits given by the input (files or a split column): validation and test as given; with
    /// `undersample` the train split is balanced and shuffled as the book does, else kept as given.
    private static func givenSplits(_ rows: [LabeledText], labelNames: [String], _ o: Options) throws -> [[LabeledText]] {
        if let untagged = rows.first(where: { $0.split == nil }) {
            throw PipelineError("line \(untagged.line) has no split (empty split column)", location: "--split-column",
                                hint: "give every row train, validation or test")
        }
        let parts = (0..<3).map { s in rows.filter { $0.split == s } }
        try checkTrainHasEveryClass(parts, labelNames: labelNames, balanced: rows)
        guard o.balance == .undersample else { return parts }
        return [shuffled(try balanced(parts[0], labelNames: labelNames, o), seed: o.seed), parts[1], parts[2]]
    }

    private static func checkFractions(_ o: Options) throws {
        guard o.trainFraction >= 0, o.validationFraction >= 0, o.trainFraction + o.validationFraction <= 1,
              o.trainFraction.isFinite, o.validationFraction.isFinite else {
            throw PipelineError("train and validation fractions must be between 0 and 1 and sum to at most 1 (got \(o.trainFraction) and \(o.validationFraction))",
                                location: "--train-frac / --validation-frac")
        }
    }

    /// `--limit N`: N rows drawn with RandomState(seed), kept in file order.
    private static func limited(_ rows: [LabeledText], _ o: Options) throws -> [LabeledText] {
        guard let n = o.limit else { return rows }
        guard n > 0 else { throw PipelineError("--limit must be positive (got \(n))", location: "--limit") }
        guard n < rows.count else { return rows }
        var rng = NumpyRandomState(seed: o.seed)
        return rng.choiceWithoutReplacement(rows.count, size: n).sorted().map { rows[$0] }
    }

    /// The rows kept by `--balance`, classes concatenated in id order for `undersample`.
    private static func balanced(_ rows: [LabeledText], labelNames: [String], _ o: Options) throws -> [LabeledText] {
        let byClass = labelNames.indices.map { c in rows.filter { $0.label == c } }
        if let empty = byClass.firstIndex(where: \.isEmpty) {
            throw PipelineError("class \"\(labelNames[empty])\" has no rows\(o.limit.map { " among the --limit \($0) rows" } ?? ""), so it cannot be learned or balanced",
                                location: "--balance", hint: "add rows of that class, drop it from --labels, or raise --limit")
        }
        guard o.balance == .undersample else { return rows }
        let smallest = byClass.map(\.count).min() ?? 0
        return byClass.flatMap { members -> [LabeledText] in
            guard members.count > smallest else { return members }
            var rng = NumpyRandomState(seed: o.seed)
            return rng.choiceWithoutReplacement(members.count, size: smallest).map { members[$0] }
        }
    }

    /// A class missing from train could never be predicted, and scoring validation/test rows of a
    /// label train never saw says nothing; both are refused (an empty train split is left to the
    /// sequence-length check, which says so).
    private static func checkTrainHasEveryClass(_ parts: [[LabeledText]], labelNames: [String], balanced: [LabeledText]) throws {
        guard !parts[0].isEmpty else { return }
        for (c, name) in labelNames.enumerated() where !parts[0].contains(where: { $0.label == c }) {
            let total = balanced.filter { $0.label == c }.count
            let (v, t) = (parts[1].filter { $0.label == c }.count, parts[2].filter { $0.label == c }.count)
            throw PipelineError("class \"\(name)\" has too few rows for the split: \(total) in all, none of them in train (\(v) in validation, \(t) in test), so the model would meet a label in validation/test that train never saw",
                                location: "--train-frac / --stratify",
                                hint: "add rows of that class, pass --stratify (each class is cut by the fractions), raise --train-frac or drop the class")
        }
    }

    /// Python's slices of the shuffled rows at int(n * train_frac) and int(n * validation_frac) after it.
    private static func cut(_ rows: [LabeledText], _ o: Options) -> [[LabeledText]] {
        let n = rows.count
        // Python's slices clamp to the length; clamping here keeps a rounding overshoot harmless too.
        let trainEnd = min(n, Int(Double(n) * o.trainFraction))
        let validationEnd = min(n, trainEnd + Int(Double(n) * o.validationFraction))
        return [Array(rows[0..<trainEnd]), Array(rows[trainEnd..<validationEnd]), Array(rows[validationEnd...])]
    }

    /// Each class cut by the fractions on its own; every split keeps the shuffled order.
    private static func stratifiedCut(_ rows: [LabeledText], classes: Int, _ o: Options) -> [[LabeledText]] {
        var assigned = [Int](repeating: 2, count: rows.count)
        for c in 0..<classes {
            let members = rows.indices.filter { rows[$0].label == c }
            let parts = cut(members.map { rows[$0] }, o).map(\.count)
            for (k, i) in members.enumerated() { assigned[i] = k < parts[0] ? 0 : (k < parts[0] + parts[1] ? 1 : 2) }
        }
        return (0..<3).map { s in rows.indices.filter { assigned[$0] == s }.map { rows[$0] } }
    }
}

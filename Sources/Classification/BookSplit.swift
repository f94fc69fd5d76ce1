import ArtifactKit
import Foundation

/// The book's balanced train/validation/test split of chapter 6, row for row:
///
///     num_spam = df[df["Label"] == "spam"].shape[0]
///     ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
///     balanced_df = pd.concat([ham_subset, df[df["Label"] == "spam"]])
///     df = balanced_df.sample(frac=1, random_state=123).reset_index(drop=True)
///     train_end = int(len(df) * train_frac)
///     validation_end = train_end + int(len(df) * validation_frac)
///
/// Each `sample` call builds a fresh `RandomState(seed)`, so the same seed is used twice.
public struct BookSplit {
    public var train: [LabeledText]
    public var validation: [LabeledText]
    public var test: [LabeledText]
    /// Rows per class after undersampling the majority class (ham) to the spam count.
    public var balancedHam: Int
    public var balancedSpam: Int

    public init(rows: [LabeledText], seed: UInt32, trainFraction: Double, validationFraction: Double) throws {
        guard trainFraction >= 0, validationFraction >= 0, trainFraction + validationFraction <= 1,
              trainFraction.isFinite, validationFraction.isFinite else {
            throw PipelineError("train and validation fractions must be between 0 and 1 and sum to at most 1 (got \(trainFraction) and \(validationFraction))",
                                location: "--train-frac / --validation-frac")
        }
        let ham = rows.filter { $0.label == SpamLabels.ham }
        let spam = rows.filter { $0.label == SpamLabels.spam }
        guard !spam.isEmpty else {
            throw PipelineError("the data set has no spam rows, so balancing leaves nothing to train on")
        }
        guard ham.count >= spam.count else {
            // pandas: "Cannot take a larger sample than population when 'replace=False'".
            throw PipelineError("there are fewer ham rows (\(ham.count)) than spam rows (\(spam.count)); the book undersamples ham to the spam count")
        }
        var balanceRNG = NumpyRandomState(seed: seed)
        let hamSubset = balanceRNG.choiceWithoutReplacement(ham.count, size: spam.count).map { ham[$0] }
        let balanced = hamSubset + spam

        var shuffleRNG = NumpyRandomState(seed: seed)
        // frac=1 -> size = round(1 * n) = n.
        let shuffled = shuffleRNG.choiceWithoutReplacement(balanced.count, size: balanced.count).map { balanced[$0] }

        let n = shuffled.count
        // Python's slices clamp to the length; clamping here keeps a rounding overshoot harmless too.
        let trainEnd = min(n, Int(Double(n) * trainFraction))
        let validationEnd = min(n, trainEnd + Int(Double(n) * validationFraction))
        train = Array(shuffled[0..<trainEnd])
        validation = Array(shuffled[trainEnd..<validationEnd])
        test = Array(shuffled[validationEnd...])
        balancedHam = hamSubset.count
        balancedSpam = spam.count
    }
}

import Foundation

/// How the learning rate moves after the warmup (pipeline key `train.lr_schedule`).
public enum LRScheduleKind: String, Codable, CaseIterable, Sendable {
    /// The book's chapters 6 and 7: `lr` at every step (after the warmup, if any).
    case constant
    /// Straight down from `lr` to `min_lr` at the last step (transformers' `get_linear_schedule_with_warmup`).
    case linear
    /// Half a cosine from `lr` to `min_lr` (transformers' `get_cosine_schedule_with_warmup`,
    /// num_cycles 0.5; with `min_lr` the book's appendix D).
    case cosine
}

/// The learning rate of every optimizer step of a run: the one implementation both trainers use.
///
/// With T optimizer steps in the run (`totalSteps`), W warmup steps, the peak P (`lr`), the
/// warmup's start I (`initial_lr`) and the floor M (`min_lr`), the 0-based optimizer step s trains with
///
///     s < W:   I + (P - I) * (s / W)                                          (linear warmup)
///     s >= W:  progress p = (s - W) / max(1, T - W)
///              constant  P
///              linear    M + (P - M) * max(0, (T - s) / max(1, T - W))        (= 1 - p)
///              cosine    M + (P - M) * max(0, 0.5 * (1 + cos(pi * p)))
///
/// With I = M = 0 these are transformers' `LambdaLR` values: `lr * lr_lambda(s)` of
/// `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
/// `get_cosine_schedule_with_warmup` (num_cycles 0.5: cos(pi * 0.5 * 2 * p) = cos(pi * p)); the
/// scheduler steps after each optimizer step, so optimizer step s uses lr_lambda(s) and the first
/// warmup step trains with I (0 for transformers). The cosine with I and M is the book's appendix D
/// (`lr = initial_lr + global_step * lr_increment` during the warmup, then
/// `min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress))`), and with I = 0 transformers'
/// `get_cosine_with_min_lr_schedule_with_warmup`. The linear decay to M > 0 is the same idea for
/// the straight line (transformers has no such variant). p stays below 1 inside the run, so the
/// max(0, ...) only matters past it, as in transformers.
///
/// Computed in double precision, as Python does; the optimizer receives the value rounded to
/// float32 (`learningRate(at:)`), as it has always received `lr`.
public struct LRSchedule: Equatable, Sendable {
    public var kind: LRScheduleKind
    /// P: the rate after the warmup, before any decay (`train.lr`).
    public var peak: Double
    /// T: optimizer steps of the whole run.
    public var totalSteps: Int
    /// W.
    public var warmupSteps: Int
    /// I: where the warmup starts.
    public var initialLR: Double
    /// M: where the decay ends.
    public var minLR: Double

    public init(kind: LRScheduleKind, peak: Double, totalSteps: Int, warmupSteps: Int = 0, initialLR: Double = 0,
                minLR: Double = 0) {
        self.kind = kind
        self.peak = peak
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
        self.initialLR = initialLR
        self.minLR = minLR
    }

    /// The schedule of a run's settings: the peak is `lr` exactly (as a double), so a constant
    /// schedule without warmup hands the optimizer `lr` itself at every step.
    public init(_ c: TrainingControls, learningRate: Float, totalSteps: Int) {
        self.init(kind: c.lrSchedule, peak: Double(learningRate), totalSteps: totalSteps,
                  warmupSteps: c.warmupSteps(totalSteps: totalSteps), initialLR: c.initialLR, minLR: c.minLR)
    }

    /// Warmup steps of a ratio of the run: ceil(T * ratio), as transformers' `TrainingArguments.get_warmup_steps`.
    public static func warmupSteps(ratio: Double, totalSteps: Int) -> Int {
        Int((Double(totalSteps) * ratio).rounded(.up))
    }

    /// The rate of 0-based optimizer step `step`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return initialLR + (peak - initialLR) * (Double(step) / Double(warmupSteps)) }
        let decaySteps = Double(max(1, totalSteps - warmupSteps))
        switch kind {
        case .constant:
            return peak
        case .linear:
            return minLR + (peak - minLR) * max(0, Double(totalSteps - step) / decaySteps)
        case .cosine:
            let progress = Double(step - warmupSteps) / decaySteps
            return minLR + (peak - minLR) * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }

    /// What the optimizer is given for 0-based step `step`.
    public func learningRate(at step: Int) -> Float { Float(rate(at: step)) }
}

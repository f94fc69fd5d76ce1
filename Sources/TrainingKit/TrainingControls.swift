import ArtifactKit
import Foundation

/// When the training and validation losses are measured (pipeline key `train.eval_strategy`).
public enum EvalStrategy: String, Codable, CaseIterable, Sendable {
    /// After optimizer steps 1, 1 + eval_freq, 1 + 2 eval_freq, ... (the book's `global_step % eval_freq == 0`).
    case steps
    /// After the last optimizer step of each epoch.
    case epoch
}

/// Which validation number decides the best checkpoint and early stopping (`train.best_metric`).
public enum BestMetric: String, Codable, CaseIterable, Sendable {
    /// The validation loss of each loss evaluation (lower is better).
    case loss
    /// The classifier's validation accuracy of each epoch end (higher is better).
    case accuracy

    /// The log record field it is read from.
    public var logKey: String { self == .loss ? "val_loss" : "val_accuracy" }

    /// Whether `value` is strictly better than `best` (anything finite beats no value yet).
    public func improves(_ value: Double, on best: Double?) -> Bool {
        guard value.isFinite else { return false }
        guard let best else { return true }
        return self == .loss ? value < best : value > best
    }
}

/// The training controls beyond the book's loop (issue 12): learning-rate schedule, gradient
/// clipping and accumulation, when to evaluate, the best checkpoint and early stopping. Part of
/// `LoopSettings`, coded into the same object with the pipeline's snake_case keys. Every default
/// is the book's loop, so a run that sets none of them is the run it always was.
public struct TrainingControls: Codable, Equatable, Sendable {
    public var lrSchedule: LRScheduleKind = .constant
    /// Linear warmup over this many optimizer steps (0: none) ...
    public var warmupSteps = 0
    /// ... or over ceil(ratio x total steps) (0: none); give one of the two.
    public var warmupRatio = 0.0
    /// Where the warmup starts (the book's appendix D `initial_lr`; transformers: 0).
    public var initialLR = 0.0
    /// Where the linear or cosine decay ends (appendix D's `min_lr`; transformers: 0).
    public var minLR = 0.0
    /// Clip the global L2 norm of all trainable gradients to this (0: no clipping).
    public var maxGradNorm = 0.0
    /// Micro-batches of `batch_size` rows per optimizer step.
    public var gradAccum = 1
    public var evalStrategy: EvalStrategy = .steps
    /// Keep `best/model.safetensors`, the checkpoint of the best `bestMetric` so far.
    public var saveBest = false
    public var bestMetric: BestMetric = .loss
    /// Stop after this many evaluations of `bestMetric` in a row without improvement (0: never).
    public var earlyStoppingPatience = 0

    public init(lrSchedule: LRScheduleKind = .constant, warmupSteps: Int = 0, warmupRatio: Double = 0, initialLR: Double = 0,
                minLR: Double = 0, maxGradNorm: Double = 0, gradAccum: Int = 1, evalStrategy: EvalStrategy = .steps,
                saveBest: Bool = false, bestMetric: BestMetric = .loss, earlyStoppingPatience: Int = 0) {
        self.lrSchedule = lrSchedule
        self.warmupSteps = warmupSteps
        self.warmupRatio = warmupRatio
        self.initialLR = initialLR
        self.minLR = minLR
        self.maxGradNorm = maxGradNorm
        self.gradAccum = gradAccum
        self.evalStrategy = evalStrategy
        self.saveBest = saveBest
        self.bestMetric = bestMetric
        self.earlyStoppingPatience = earlyStoppingPatience
    }

    /// The resolved warmup of a run of `totalSteps` optimizer steps.
    public func warmupSteps(totalSteps: Int) -> Int {
        warmupSteps > 0 ? warmupSteps : LRSchedule.warmupSteps(ratio: warmupRatio, totalSteps: totalSteps)
    }

    /// Whether the learning rate of a step depends on how long the run is (then `epochs` and
    /// `max_steps` belong to the resume key).
    public var scheduleDependsOnLength: Bool { lrSchedule != .constant || warmupRatio > 0 }

    /// Checks every control, naming its pipeline key; `learningRate` is the run's `lr`.
    public func validate(learningRate: Float) throws {
        let lr = learningRate.shortestDouble
        func bad(_ key: String, _ message: String, hint: String? = nil) -> PipelineError {
            PipelineError("\(key) \(message)", location: "train.\(key)", hint: hint)
        }
        guard warmupSteps >= 0 else { throw bad("warmup_steps", "must not be negative, got \(warmupSteps)") }
        guard warmupRatio >= 0 && warmupRatio < 1 else { throw bad("warmup_ratio", "must be in [0, 1), got \(warmupRatio)") }
        guard warmupSteps == 0 || warmupRatio == 0 else {
            throw bad("warmup_ratio", "and warmup_steps are both set (\(warmupRatio), \(warmupSteps))", hint: "give one of the two")
        }
        guard initialLR >= 0 && initialLR <= lr else { throw bad("initial_lr", "must be in [0, lr], got \(initialLR)") }
        guard initialLR == 0 || warmupSteps > 0 || warmupRatio > 0 else {
            throw bad("initial_lr", "is where the warmup starts, but there is no warmup", hint: "set warmup_steps or warmup_ratio, or leave initial_lr at 0")
        }
        guard minLR >= 0 && minLR <= lr else { throw bad("min_lr", "must be in [0, lr], got \(minLR)") }
        guard minLR == 0 || lrSchedule != .constant else {
            throw bad("min_lr", "is where a decay ends, but lr_schedule is constant", hint: "use lr_schedule linear or cosine")
        }
        guard maxGradNorm >= 0 && maxGradNorm.isFinite else { throw bad("max_grad_norm", "must be a finite number >= 0 (0: no clipping), got \(maxGradNorm)") }
        guard gradAccum >= 1 else { throw bad("grad_accum", "must be at least 1, got \(gradAccum)") }
        guard earlyStoppingPatience >= 0 else { throw bad("early_stopping_patience", "must not be negative (0: off), got \(earlyStoppingPatience)") }
    }

    enum CodingKeys: String, CodingKey {
        case lrSchedule = "lr_schedule", warmupSteps = "warmup_steps", warmupRatio = "warmup_ratio", initialLR = "initial_lr",
             minLR = "min_lr", maxGradNorm = "max_grad_norm", gradAccum = "grad_accum", evalStrategy = "eval_strategy",
             saveBest = "save_best", bestMetric = "best_metric", earlyStoppingPatience = "early_stopping_patience"
    }

    /// Reads what the (synthesized) encoding writes; settings recorded before these controls existed get the defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingControls()
        lrSchedule = try c.decodeIfPresent(LRScheduleKind.self, forKey: .lrSchedule) ?? d.lrSchedule
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        warmupRatio = try c.decodeIfPresent(Double.self, forKey: .warmupRatio) ?? d.warmupRatio
        initialLR = try c.decodeIfPresent(Double.self, forKey: .initialLR) ?? d.initialLR
        minLR = try c.decodeIfPresent(Double.self, forKey: .minLR) ?? d.minLR
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm) ?? d.maxGradNorm
        gradAccum = try c.decodeIfPresent(Int.self, forKey: .gradAccum) ?? d.gradAccum
        evalStrategy = try c.decodeIfPresent(EvalStrategy.self, forKey: .evalStrategy) ?? d.evalStrategy
        saveBest = try c.decodeIfPresent(Bool.self, forKey: .saveBest) ?? d.saveBest
        bestMetric = try c.decodeIfPresent(BestMetric.self, forKey: .bestMetric) ?? d.bestMetric
        earlyStoppingPatience = try c.decodeIfPresent(Int.self, forKey: .earlyStoppingPatience) ?? d.earlyStoppingPatience
    }

    /// The defaults as coded: the resume key leaves out controls at these values, so a state
    /// written before the controls existed still belongs to a run that sets none of them.
    public static let defaultJSON: [String: JSONValue] = {
        let data = (try? JSONEncoder().encode(TrainingControls())) ?? Data()
        return (try? JSONDecoder().decode([String: JSONValue].self, from: data)) ?? [:]
    }()
}

/// The best value of the chosen metric so far, where it was, and how many evaluations have
/// passed without beating it: what `--save-best` and early stopping need, stored in the resume state.
public struct BestTracker: Codable, Equatable, Sendable {
    /// nil before the first evaluation.
    public var value: Double?
    /// Optimizer step and 1-based epoch of that evaluation.
    public var step = 0
    public var epoch = 0
    public var evaluationsWithoutImprovement = 0
    /// Early stopping ended the run.
    public var stoppedEarly = false

    public init() {}
}

import ArtifactKit
import Foundation

/// The settings of the book's training loops that both trainers share (pipeline keys
/// `train.seed`, `train.lr`, ...): what `EpochLoop` and AdamW read.
public protocol LoopSettings {
    var seed: UInt64 { get }
    var learningRate: Float { get }
    var weightDecay: Float { get }
    var epochs: Int { get }
    var batchSize: Int { get }
    var evalFreq: Int { get }
    var evalIter: Int { get }
    /// Write a resumable state every this many optimizer steps (0: only at the end / on Ctrl-C).
    var saveEvery: Int { get }
    /// Stop after this many optimizer steps in total (nil: the epochs decide).
    var maxSteps: Int? { get }
}

extension LoopSettings {
    public var maxSteps: Int? { nil }

    /// Checks every loop setting, naming the pipeline key of the first bad one.
    public func validateLoop() throws {
        guard epochs >= 1 else { throw PipelineError("epochs must be at least 1", location: "train.epochs") }
        guard batchSize >= 1 else { throw PipelineError("batch_size must be at least 1", location: "train.batch_size") }
        guard evalFreq >= 1 else { throw PipelineError("eval_freq must be at least 1", location: "train.eval_freq") }
        guard evalIter >= 1 else { throw PipelineError("eval_iter must be at least 1", location: "train.eval_iter") }
        guard saveEvery >= 0 else { throw PipelineError("save_every must not be negative", location: "train.save_every") }
        guard learningRate > 0, learningRate.isFinite else { throw PipelineError("lr must be positive", location: "train.lr") }
        guard weightDecay >= 0 else { throw PipelineError("weight_decay must not be negative", location: "train.weight_decay") }
        if let m = maxSteps, m < 1 { throw PipelineError("max_steps must be at least 1", location: "train.max_steps") }
    }
}

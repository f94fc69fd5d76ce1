import ArtifactKit
import Foundation

/// The settings of the book's training loops that both trainers share (pipeline keys
/// `train.seed`, `train.lr`, ...): what `EpochLoop` and AdamW read. Each trainer's settings
/// type holds one and exposes its fields as its own (`settings.learningRate`).
///
/// Coded with the pipeline's snake_case keys; `save_every` is not coded: it changes no number
/// of a run, so it is not a param a resume state or a manifest has to match.
public struct LoopSettings: Codable, Equatable, Sendable {
    public var seed: UInt64 = 123
    public var learningRate: Float = 5e-5
    public var weightDecay: Float = 0.1
    public var epochs: Int
    public var batchSize: Int = 8
    public var evalFreq: Int
    public var evalIter: Int = 5
    /// Write a resumable state every this many optimizer steps (0: only at the end / on Ctrl-C).
    public var saveEvery: Int = 50
    /// Stop after this many optimizer steps in total and write the outputs (a shorter run than
    /// `epochs` asks for; nil: no limit). Does not change any number up to that step.
    public var maxSteps: Int? = nil
    /// Schedule, clipping, accumulation, evaluation, best checkpoint, early stopping (all off by default).
    public var controls = TrainingControls()

    /// The book's defaults, with the chapter's epochs and evaluation frequency.
    public init(epochs: Int, evalFreq: Int) {
        self.epochs = epochs
        self.evalFreq = evalFreq
    }

    /// Checks every loop setting, naming the pipeline key of the first bad one.
    public func validate() throws {
        guard epochs >= 1 else { throw PipelineError("epochs must be at least 1", location: "train.epochs") }
        guard batchSize >= 1 else { throw PipelineError("batch_size must be at least 1", location: "train.batch_size") }
        guard evalFreq >= 1 else { throw PipelineError("eval_freq must be at least 1", location: "train.eval_freq") }
        guard evalIter >= 1 else { throw PipelineError("eval_iter must be at least 1", location: "train.eval_iter") }
        guard saveEvery >= 0 else { throw PipelineError("save_every must not be negative", location: "train.save_every") }
        guard learningRate > 0, learningRate.isFinite else { throw PipelineError("lr must be positive", location: "train.lr") }
        guard weightDecay >= 0 else { throw PipelineError("weight_decay must not be negative", location: "train.weight_decay") }
        if let m = maxSteps, m < 1 { throw PipelineError("max_steps must be at least 1", location: "train.max_steps") }
        try controls.validate(learningRate: learningRate)
    }

    enum CodingKeys: String, CodingKey {
        case seed, learningRate = "lr", weightDecay = "weight_decay", epochs, batchSize = "batch_size",
             evalFreq = "eval_freq", evalIter = "eval_iter", maxSteps = "max_steps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(epochs: try c.decode(Int.self, forKey: .epochs), evalFreq: try c.decode(Int.self, forKey: .evalFreq))
        seed = try c.decode(UInt64.self, forKey: .seed)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        evalIter = try c.decode(Int.self, forKey: .evalIter)
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        controls = try TrainingControls(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seed, forKey: .seed)
        try c.encode(learningRate.shortestDouble, forKey: .learningRate)
        try c.encode(weightDecay.shortestDouble, forKey: .weightDecay)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(evalFreq, forKey: .evalFreq)
        try c.encode(evalIter, forKey: .evalIter)
        try c.encode(maxSteps, forKey: .maxSteps)
        try controls.encode(to: encoder)
    }
}

/// A trainer's settings: `loop` shared, the rest its own; `settings.lr`-style access to the loop's fields.
public protocol TrainerSettings: Codable {
    var loop: LoopSettings { get set }
}

extension TrainerSettings {
    /// The loop's fields read and written as the settings' own (with `@dynamicMemberLookup`).
    public subscript<T>(dynamicMember path: WritableKeyPath<LoopSettings, T>) -> T {
        get { loop[keyPath: path] }
        set { loop[keyPath: path] = newValue }
    }

    public var seed: UInt64 {
        get { loop.seed }
        set { loop.seed = newValue }
    }

    /// The coded settings as JSON values: the params of the training manifest.
    public var asJSON: [String: JSONValue] {
        let data = (try? JSONEncoder().encode(self)) ?? Data()
        return (try? JSONDecoder().decode([String: JSONValue].self, from: data)) ?? [:]
    }

    /// The settings that decide the numbers a run produces; a resume state must have been made with
    /// the same ones. `epochs` and `max_steps` may grow on resume (they only decide where to stop),
    /// unless the learning rate depends on the run's length (a decaying schedule or a warmup ratio).
    /// Training controls at their defaults are left out, so a state written before they existed
    /// still belongs to a run that sets none of them.
    public var resumeKey: String {
        var j = asJSON
        if !loop.controls.scheduleDependsOnLength {
            j["epochs"] = nil
            j["max_steps"] = nil
        }
        for (key, value) in TrainingControls.defaultJSON where j[key] == value { j[key] = nil }
        return JSONValue.object(j).canonicalString
    }

    /// Reads settings back from a manifest's params or a checkpoint's metadata (`source` names it).
    public static func decode(_ json: String, source: String) throws -> Self {
        do { return try JSONDecoder().decode(Self.self, from: Data(json.utf8)) } catch {
            throw PipelineError("the recorded training settings do not decode: \(error)", location: source,
                                hint: "train again with this version of the tools")
        }
    }
}

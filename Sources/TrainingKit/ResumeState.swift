import ArtifactKit
import Foundation

/// Everything needed to continue a training run exactly where it stopped: the trained part of the
/// weights, the AdamW moments and step, where in which epoch's batch order we are, the random
/// generator, the log so far, and the best evaluation and early-stopping count. The learning-rate
/// schedule's position is the optimizer step (the schedule is a function of it and of the settings
/// in the key). States are written only between optimizer steps, so with gradient accumulation no
/// partial sum of micro-batch gradients is ever stored: `nextBatch` is then a multiple of `grad_accum`.
/// Frozen weights are not stored: they are reloaded from the same
/// base (the settings and input hashes must match, so they are the same).
///
/// File `state`: header "LLMFTRES" + u32 version, u32 n + n bytes of JSON (`Meta`), then the
/// trained parameters, the first and the second AdamW moments, each `trainable` floats.
public struct ResumeState: Equatable {
    public static let header = ArtifactHeader(magic: "LLMFTRES", version: 1)
    public static let fileName = "state"

    public struct Meta: Codable, Equatable {
        /// `ClassifierSettings.resumeKey` of the run that wrote it.
        public var settingsKey: String
        /// Hashes of the shards and base weights it was trained from.
        public var inputsKey: String
        public var trainableLower: Int
        public var trainableUpper: Int
        public var optimizerStep: Int
        /// 0-based epoch in progress.
        public var epoch: Int
        /// Next (micro-)batch of that epoch; equal to the epoch's used batches when only the epoch-end work is left.
        public var nextBatch: Int
        /// That epoch's order of training rows.
        public var permutation: [Int]
        public var generator: SeededGenerator
        public var examplesSeen: Int
        public var elapsedSeconds: Double
        public var log: [LogRecord]
        /// The best evaluation so far and the early-stopping count (nil in states written before
        /// the training controls: nothing tracked yet).
        public var best: BestTracker? = nil
        /// The gradient norm of the last optimizer step when it was measured (an epoch-end
        /// evaluation after resuming logs it).
        public var lastGradNorm: Double? = nil
    }

    public var meta: Meta
    public var parameters: [Float]
    public var m: [Float]
    public var v: [Float]

    public init(meta: Meta, parameters: [Float], m: [Float], v: [Float]) {
        self.meta = meta
        self.parameters = parameters
        self.m = m
        self.v = v
    }

    /// Checks that this state was written by a run with the same settings (`settingsKey`), the same
    /// shards and base weights (`inputsKey`) and the same trained part of the parameter vector.
    public func checkCompatible(settingsKey: String, inputsKey: String, trained: Range<Int>, source: String) throws {
        if meta.settingsKey != settingsKey {
            throw PipelineError("the resume state was made with different train params (\(Self.differences(from: meta.settingsKey, to: settingsKey)))",
                                location: source, hint: "rerun with the same params, or train without --resume to start over")
        }
        if meta.inputsKey != inputsKey {
            throw PipelineError("the resume state was made from different shards or base weights", location: source,
                                hint: "train without --resume to start over")
        }
        if meta.trainableLower != trained.lowerBound || meta.trainableUpper != trained.upperBound {
            throw PipelineError("the resume state trains a different part of the model (\(meta.trainableUpper - meta.trainableLower) parameters, this run trains \(trained.count))",
                                location: source, hint: "train without --resume to start over")
        }
    }

    /// "key: old -> new" for each param that differs between two settings keys (canonical JSON
    /// objects); the whole keys when either is not one.
    static func differences(from old: String, to new: String) -> String {
        guard case .object(let a)? = try? JSONDecoder().decode(JSONValue.self, from: Data(old.utf8)),
              case .object(let b)? = try? JSONDecoder().decode(JSONValue.self, from: Data(new.utf8)) else {
            return "state: \(old); now: \(new)"
        }
        return Set(a.keys).union(b.keys).sorted().compactMap { key in
            a[key] == b[key] ? nil : "\(key): \(a[key]?.description ?? "absent") -> \(b[key]?.description ?? "absent")"
        }.joined(separator: ", ")
    }

    public func write(to url: URL) throws {
        try AtomicFile.write(try encoded(), to: url)
    }

    /// The file's bytes: header, metadata JSON, then parameters and both moments.
    public func encoded() throws -> Data {
        var w = BinaryWriter()
        ResumeState.header.write(to: &w)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = try enc.encode(meta)
        w.u32(UInt32(json.count))
        w.bytes([UInt8](json))
        w.u64(UInt64(parameters.count))
        w.array(parameters)
        w.array(m)
        w.array(v)
        return w.data
    }

    public static func read(from url: URL) throws -> ResumeState {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PipelineError("cannot read the resume state", location: url.path, hint: "train without --resume to start over")
        }
        return try decode(data, source: url.path)
    }

    /// A state from `encoded()` bytes; `source` names where they came from in errors.
    public static func decode(_ data: Data, source: String) throws -> ResumeState {
        var r = BinaryReader(data: data, source: source)
        try header.check(&r, producer: "train")
        let n = Int(try r.u32())
        let json = Data(try r.bytes(n))
        let meta: Meta
        do { meta = try JSONDecoder().decode(Meta.self, from: json) } catch {
            throw PipelineError("the resume state's metadata does not parse: \(error)", location: source,
                                hint: "train without --resume to start over")
        }
        let count = Int(try r.u64())
        guard count == meta.trainableUpper - meta.trainableLower else {
            throw PipelineError("the resume state holds \(count) parameters for a range of \(meta.trainableUpper - meta.trainableLower)",
                                location: source)
        }
        let p = try r.array(Float.self, count: count)
        let m = try r.array(Float.self, count: count)
        let v = try r.array(Float.self, count: count)
        guard r.remaining == 0 else {
            throw PipelineError("the resume state has \(r.remaining) unexpected trailing bytes", location: source)
        }
        return ResumeState(meta: meta, parameters: p, m: m, v: v)
    }
}

/// Whether `train` continues from the state in its output folder.
public enum ResumeMode: Sendable {
    /// Start over (a state there is overwritten as the run goes).
    case never
    /// `--resume`: the state must exist and belong to this run's params and inputs.
    case required
    /// `--continue-interrupted` (what pipeline.yaml uses): continue a state left by an interrupted
    /// run with the same params and inputs; start over when there is none, when it is from other
    /// params or inputs, or when that run finished (rerunning a finished stage means training again).
    case ifInterrupted
}

extension ResumeState {
    /// The state to continue from under `mode` (nil: start over). `check` throws when a state
    /// does not belong to this run; `totalSteps` tells a finished run's state from an interrupted one.
    public static func load(mode: ResumeMode, from url: URL, check: (ResumeState) throws -> Void, totalSteps: Int,
                     progress: @escaping ProgressHandler) throws -> ResumeState? {
        switch mode {
        case .never:
            return nil
        case .required:
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError("--resume, but there is no resume state", location: url.path, hint: "train without --resume")
            }
            let state = try read(from: url)
            try check(state)
            return state
        case .ifInterrupted:
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            let state: ResumeState
            do {
                state = try read(from: url)
                try check(state)
            } catch let e as PipelineError {
                progress(.note("not continuing the state in \(url.path) (\(e.message.split(separator: "\n").first ?? "")): starting over"))
                return nil
            }
            guard state.meta.optimizerStep < totalSteps && state.meta.best?.stoppedEarly != true else {
                progress(.note("the state in \(url.path) is from a finished run: training again from the start"))
                return nil
            }
            progress(.note("continuing the interrupted run in \(url.path) at step \(state.meta.optimizerStep) of \(totalSteps)"))
            return state
        }
    }
}

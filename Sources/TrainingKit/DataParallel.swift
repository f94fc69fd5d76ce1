import ArtifactKit
import Foundation

/// Data-parallel training (llm.c's and PyTorch DDP's scheme) over a `Collective`: every rank
/// holds the whole model, takes its share of every global batch, and the gradients of the shares
/// are summed, so every rank applies the same update as one process would.
///
/// Why the sum is the one-process gradient: a step's loss is a mean over its n items (rows for
/// the classifier, target tokens for chapter 7), L = (1/n) sum_j l_j. Split the items into
/// shares S_r of n_r items; then L = sum_r (n_r / n) L_r with L_r the mean over S_r, and
/// dL = sum_r (n_r / n) dL_r. So rank r back-propagates its share's mean loss with weight
/// n_r / n (every rank can compute n: each reads the whole batch, which is just indices and
/// token ids) and the all-reduced sum is dL. Only the order of the additions differs from one
/// process, so results agree to float rounding, not bit for bit.
///
/// Shares are contiguous and differ by at most one row: rank r of N takes rows
/// [r·B/N, (r+1)·B/N) of each micro-batch of B rows. A batch size that N does not divide is
/// fine (the weights n_r / n account for uneven shares); fewer rows than ranks is refused,
/// since a rank would have nothing to do.
public struct DataParallel {
    public let collective: Collective

    public init(_ collective: Collective) { self.collective = collective }

    /// One process: the trainers' code paths of old, nothing combined.
    public static var single: DataParallel { DataParallel(SingleProcess()) }

    public var rank: Int { collective.rank }
    public var size: Int { collective.size }
    public var isDistributed: Bool { collective.isDistributed }
    public var writesOutputs: Bool { collective.writesOutputs }

    /// This rank's contiguous share of `items`.
    public func share<T>(_ items: [T]) -> [T] {
        guard isDistributed else { return items }
        let n = items.count
        return Array(items[(n * rank / size)..<(n * (rank + 1) / size)])
    }

    /// Refuses a job with more ranks than rows in a batch.
    public func check(batchSize: Int) throws {
        guard batchSize < size else { return }
        throw PipelineError("\(size) processes but batches of \(batchSize) rows: every process needs at least one row of each batch",
                            location: "train.processes", hint: "use at most \(batchSize) processes, or a larger batch_size")
    }

    /// `StepPlan.accumulate` over this rank's shares: each micro-batch's share is made into a
    /// `Batch` once (`prepare`: the rows themselves, or a collated batch) and `body(call, batch,
    /// weight)` runs on it (`call` counts the calls, 0 first) with weight n_share / n_step, where
    /// `items` counts a batch's loss items (nil: its rows, each weighing the same). Returns this
    /// rank's part of the step's loss; `sumLoss` adds the parts up.
    public func accumulate<Batch>(_ plan: StepPlan, prepare: ([Int]) -> Batch, items: ((Batch) -> Int)? = nil,
                                  _ body: (_ call: Int, _ batch: Batch, _ weight: Float) throws -> Float) throws -> Float {
        guard isDistributed else {
            let batches = plan.microBatches.map(prepare)
            return try plan.accumulate(sizes: items.map { batches.map($0) }) { i, _, weight in try body(i, batches[i], weight) }
        }
        // Every rank counts the whole step's items (its shares' batches and the others').
        let count = { (rows: [Int], batch: Batch) in items?(batch) ?? rows.count }
        let total = plan.microBatches.map { count($0, prepare($0)) }.reduce(0, +)
        var loss = 0.0, calls = 0
        for rows in plan.microBatches {
            // A share without loss items (every target masked) adds nothing.
            let mine = share(rows), batch = prepare(mine), n = count(mine, batch)
            guard n > 0 else { continue }
            let weight = Double(n) / Double(total)
            loss += weight * Double(try body(calls, batch, Float(weight)))
            calls += 1
        }
        return Float(loss)
    }

    /// Sums the ranks' gradients in place (call once per stretch of the gradient buffer; the
    /// trainers' trainable gradients are one contiguous stretch, so one fused exchange per step).
    public func sumGradients(_ gradients: UnsafeMutableBufferPointer<Float>) throws {
        guard isDistributed else { return }
        try collective.sum(gradients, what: "the gradients")
    }

    /// The step's loss: the sum of the ranks' parts (`accumulate`'s results).
    public func sumLoss(_ part: Float) throws -> Float {
        guard isDistributed else { return part }
        return Float(try collective.sum([Double(part)], what: "the step's loss")[0])
    }

    /// Evaluation split across ranks: whole batches dealt round-robin (rank r takes batches
    /// r, r+N, ...), `perRank` returns sums over the batches it is given (e.g. loss sum, correct
    /// answers, rows), and those are added across ranks.
    public func sumOverBatches(_ batches: [[Int]], _ perRank: ([[Int]]) throws -> [Double]) throws -> [Double] {
        guard isDistributed else { return try perRank(batches) }
        let mine = batches.indices.filter { $0 % size == rank }.map { batches[$0] }
        return try collective.sum(try perRank(mine), what: "the evaluation sums")
    }

    /// Whether any rank's Ctrl-C flag is up, so all ranks stop after the same step.
    public func anyInterrupted() throws -> Bool {
        guard isDistributed else { return InterruptFlag.isRaised }
        return try collective.any(InterruptFlag.isRaised, what: "the stop flag")
    }

    /// Checks that every rank runs the same program on the same settings and inputs: each sends
    /// the sha256 of `key` (settings + input hashes + the executable), and any rank that differs
    /// from rank 0 stops the whole job with a message naming it.
    public func checkSameRun(_ key: String) throws {
        guard isDistributed else { return }
        let digest = FileHash.sha256(of: key + " exe=" + Self.executableDigest)
        let all = try collective.gather(Array(digest.utf8), what: "the settings check")
        let differing = all.indices.filter { all[$0] != all[0] }
        guard !differing.isEmpty else { return }
        throw PipelineError("processes \(differing.map(String.init).joined(separator: ", ")) of \(size) run other settings, inputs or another build than process 0 (the settings, input hashes and executable must be the same on every host)",
                            location: "mpirun", hint: "build the same commit on every host, give every process the same options and the same prepared data, and run again")
    }

    /// sha256 of this executable's bytes (so ranks built from different commits are told apart).
    static let executableDigest: String = {
        (try? FileHash.sha256(of: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath())) ?? "unknown"
    }()

    /// The resume state on every rank: rank 0 reads it (`load`, called there only) and sends
    /// it to the others, so only rank 0's host needs the output folder.
    func shareResumeState(_ load: () throws -> ResumeState?) throws -> ResumeState? {
        guard isDistributed else { return try load() }
        let bytes = writesOutputs ? try load().map { [UInt8](try $0.encoded()) } : nil
        return try collective.broadcast(bytes, what: "the resume state").map {
            try ResumeState.decode(Data($0), source: "the resume state sent by process 0")
        }
    }
}

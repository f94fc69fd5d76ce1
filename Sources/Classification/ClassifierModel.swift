import ArtifactKit
import Foundation
import GPT2
import TrainingKit

/// One split of the data plus, when the frozen-trunk cache is on, what the frozen layers produce
/// for each of its rows (computed once, reused by every epoch and every evaluation).
public final class DataSplit {
    public let name: String
    public let rows: LabeledRows
    /// Head only: the pooled final vector of each row, [rows, C].
    /// Otherwise: the hidden states entering the lowest trainable block, [rows, sequenceLength, C]
    /// (positions past a row's needed length are left zero: nothing reads them).
    var cache: [Float]?

    public init(name: String, rows: LabeledRows) {
        self.name = name
        self.rows = rows
    }

    public var isCached: Bool { cache != nil }
}

/// GPT-2 with the classification head, set up for one way of fine-tuning: which parameters train,
/// which positions feed the head, and whether the frozen trunk is cached and batches trimmed.
public final class ClassifierModel {
    public let backend: ClassifierBackend
    /// The flat parameter vector (base parameters in layout order, then the LoRA adapters) from
    /// `vectorStart` on; change it only through `modifyParameters` so the backend sees the change.
    ///
    /// Over a QLoRA base the backend alone holds the frozen base (its Linear weights and token
    /// embedding quantized, the rest float32) and this vector starts at the classification head:
    /// it holds the head (float32, K x C + K, frozen as in every LoRA run) and the adapters (those
    /// of every Linear and the head's own, trained in float32). A full-length vector would put a
    /// float32 copy of the quantized weights back into memory (and a gradient buffer as large),
    /// which is what quantizing the base avoids. Every index of this type (`trainableRange`,
    /// `gradients`, the head's offsets) counts from `vectorStart`.
    public private(set) var parameters: [Float]
    /// The index of the full vector `parameters[0]` holds (`ClassifierBackend.vectorStart`): 0
    /// unless the base is quantized.
    public let vectorStart: Int
    public let head: ClassifierHead
    public let pooling: Pooling
    public let trainable: TrainableLayers
    /// Cut batches to the positions the pooled output depends on (see `Pooling.neededLength`).
    public let trimBatches: Bool
    /// The lowest trainable transformer block, nil when only the head trains.
    public let startBlock: Int?
    /// The parameters the optimizer updates: a contiguous suffix of the buffer (or all of it).
    public let trainableRange: Range<Int>
    public private(set) var gradients: [Float] = []
    /// Rows per forward pass when only evaluating (more rows make better use of BLAS).
    public var inferenceChunk = 16
    /// Rows per pass of the frozen layers in `fillCache` at full length (rows x positions rows per
    /// matrix product; see docs/benchmarks.md "Frozen-trunk pass size" for how it was chosen).
    /// Trimmed rows are passed in groups of up to `trunkChunk` x sequence length positions, so short
    /// rows travel many to a pass and the products keep their size. Each row's states do not
    /// depend on the other rows of its pass (see `testTrunkChunkDoesNotChangeTheStates`).
    public var trunkChunk = 16
    /// When only the last block trains and one position per row is pooled, run that block past
    /// attention at the pooled positions only, without forming keys and values (same numbers to
    /// float rounding, a small fraction of the work: see TrunkSelected.swift).
    public var selectedPositionShortcut = true

    public init(backend: ClassifierBackend, parameters: [Float], pooling: Pooling, trainable: TrainableLayers,
                trimBatches: Bool = true) throws {
        let layout = backend.layout
        // With LoRA the vector is the base parameters followed by the adapters (LoRALayout order).
        let lora = backend.loraAdapters
        let loraCount = lora?.count ?? 0, start = backend.vectorStart
        guard parameters.count == layout.totalCount + loraCount - start else {
            throw PipelineError("parameter buffer has \(parameters.count) floats, the layout needs \(layout.totalCount + loraCount - start) from parameter \(start)")
        }
        guard (trainable == .lora) == (lora != nil) else {
            throw PipelineError(trainable == .lora ? "trainable_layers lora needs LoRA adapters attached to the model"
                                                   : "a model with LoRA adapters trains only them (trainable_layers lora)")
        }
        self.backend = backend
        self.parameters = parameters
        self.vectorStart = start
        self.head = try ClassifierHead(layout: layout, vectorStart: start, lora: lora.map { l in
            let s = l.layout.adapters(of: "out_head")[0]
            return ClassifierHead.LoRAHead(aOffset: layout.totalCount + s.aOffset - start, bOffset: layout.totalCount + s.bOffset - start,
                                           rank: l.layout.rank, alpha: l.alpha)
        })
        self.pooling = pooling
        self.trainable = trainable
        self.trimBatches = trimBatches
        let nLayers = layout.config.nLayers
        startBlock = trainable.lowestTrainableBlock(nLayers: nLayers)
        let trained: Range<Int>
        switch trainable {
        case .lastLayer: trained = layout.spec(named: "out_head.weight")!.offset..<layout.totalCount
        case .all: trained = 0..<layout.totalCount
        case .lora: trained = layout.totalCount..<(layout.totalCount + loraCount)
        default: trained = layout.blockRange(startBlock!).lowerBound..<layout.totalCount
        }
        guard trained.lowerBound >= start else {
            throw PipelineError("trainable_layers \(trainable.rawValue) trains parameters the backend holds frozen (a quantized base trains only LoRA adapters)")
        }
        trainableRange = (trained.lowerBound - start)..<(trained.upperBound - start)
        backend.loadParameters(parameters, range: 0..<parameters.count)
    }

    public var config: GPT2Config { backend.layout.config }

    /// One base tensor as float32 for the checkpoint: from `parameters`, or below `vectorStart`
    /// from the backend (a quantized tensor as its dequantized values: the model that was trained).
    public func checkpointTensor(_ spec: TensorSpec) -> [Float] {
        guard spec.offset < vectorStart else { return Array(parameters[(spec.offset - vectorStart)..<(spec.offset - vectorStart + spec.count)]) }
        return backend.frozenBaseTensor(spec)!
    }

    /// The adapters' values (the vector's part after the base parameters), nil without LoRA.
    public var adapterValues: [Float]? {
        backend.loraAdapters.map { _ in Array(parameters[(backend.layout.totalCount - vectorStart)...]) }
    }

    /// Changes parameters inside `range` and hands them to the backend.
    public func modifyParameters(in range: Range<Int>, _ body: (inout [Float]) -> Void) {
        body(&parameters)
        backend.loadParameters(parameters, range: range)
    }

    /// Whether caching the frozen trunk is exact: something must be frozen, and frozen layers
    /// must behave the same every time (no dropout). With LoRA every block changes (only the
    /// embeddings stay fixed, not worth caching), so there is no cache.
    public var cacheIsExact: Bool { trainable != .lora && !trainable.trainsEmbeddings && config.dropRate == 0 }

    // MARK: frozen trunk

    /// Computes and stores the frozen trunk's output for every row of `split`.
    public func fillCache(_ split: DataSplit, chunk: Int? = nil) throws {
        try fillCache([split], chunk: chunk)
    }

    /// Computes and stores the frozen trunk's output for every row of `splits`. Rows are grouped by
    /// needed length when trimming is allowed, so short rows are not run at full padded length.
    /// A row whose needed tokens (and real length) equal those of an earlier row, in any of the
    /// splits, copies that row's states instead of running again: the frozen layers see the same
    /// input, so they give the same output (the SMS data holds about 7% such repeated messages).
    /// Reports `.phase("frozen layers", rows run, rows to run)` after each pass. Returns how many
    /// rows were copied rather than run.
    @discardableResult
    public func fillCache(_ splits: [DataSplit], chunk: Int? = nil, parallel: DataParallel = .single,
                          progress: ProgressHandler = silentProgress) throws -> Int {
        guard cacheIsExact else { return 0 }
        let plan = FrozenPlan(splits, model: self, chunk: chunk ?? trunkChunk)
        var caches = splits.map { [Float](repeating: 0, count: $0.rows.rowCount * rowFloats($0)) }
        var done = 0, pass = -1
        let mine = plan.groups.joined().enumerated().filter { $0.offset % parallel.size == parallel.rank }.map(\.element.count).reduce(0, +)
        progress(.phase(name: "frozen layers", done: 0, total: mine))
        for (si, groups) in plan.groups.enumerated() {
            // Data-parallel: process r runs passes r, r+N, ...; the states are then summed across
            // processes, each row's coming from one process and zeros from the others (exact).
            for group in groups {
                pass += 1
                guard pass % parallel.size == parallel.rank else { continue }
                // Ctrl-C before training starts: nothing to save yet, so stop here with a message.
                if InterruptFlag.isRaised {
                    throw PipelineError("interrupted while running the frozen layers, before the first step: nothing was saved",
                                        hint: "run train again (with --resume if a state from an earlier interrupted run exists)")
                }
                try runFrozen(group, of: splits[si].rows, into: &caches[si])
                done += group.count
                progress(.phase(name: "frozen layers", done: done, total: mine))
            }
        }
        for i in caches.indices where parallel.isDistributed { try parallel.collective.sum(&caches[i], what: "the frozen-layer states") }
        for repeated in plan.repeats { copyStates(repeated, splits: splits, caches: &caches) }
        for (split, cache) in zip(splits, caches) { split.cache = cache }
        return plan.repeats.count
    }

    /// The memory the frozen-layer states of `splits` take when cached (`fillCache`).
    public func frozenStateBytes(_ splits: [DataSplit]) -> Int {
        splits.map { $0.rows.rowCount * rowFloats($0) * MemoryLayout<Float>.size }.reduce(0, +)
    }

    /// Whether caching the frozen-layer states of `splits` fits in `budget` bytes; when not, why
    /// (the model then runs the frozen layers for every batch: the same numbers, more time).
    public func frozenStatesOverBudget(_ splits: [DataSplit], budget: Int) -> String? {
        let bytes = frozenStateBytes(splits)
        guard bytes > budget else { return nil }
        return "the frozen-layer states of \(splits.map(\.rows.rowCount).reduce(0, +)) rows would take \(TextFormat.bytes(bytes)), over the memory budget of \(TextFormat.bytes(budget))"
    }

    /// Floats stored per row of `split`: the pooled vector (head only) or every position's state.
    private func rowFloats(_ split: DataSplit) -> Int {
        startBlock == nil ? config.embDim : split.rows.sequenceLength * config.embDim
    }

    /// The positions of row `r` the pooled output depends on.
    func neededLength(_ rows: LabeledRows, _ r: Int) -> Int {
        trimBatches ? pooling.neededLength(realLength: rows.lengths[r], sequenceLength: rows.sequenceLength) : rows.sequenceLength
    }

    /// Runs the frozen layers on one group of rows and stores their states in `cache`.
    private func runFrozen(_ group: [Int], of rows: LabeledRows, into cache: inout [Float]) throws {
        let C = config.embDim, S = rows.sequenceLength
        let b = rows.batch(group, pooling: pooling, trim: trimBatches)
        if let k = startBlock {
            let h = try backend.hiddenStates(tokens: b.tokens, batch: group.count, length: b.length, endBlock: k)
            for (i, r) in group.enumerated() {
                let src = i * b.length * C, dst = r * S * C
                cache.withUnsafeMutableBufferPointer { o in
                    h.withUnsafeBufferPointer { (o.baseAddress! + dst).update(from: $0.baseAddress! + src, count: b.length * C) }
                }
            }
        } else {
            let final = try backend.forwardTop(.tokens(b.tokens), batch: group.count, length: b.length, startBlock: 0,
                                               keepActivations: false)
            let pooled = head.pool(final: final, length: b.length, pooled: b.pooled)
            for (i, r) in group.enumerated() {
                for c in 0..<C { cache[r * C + c] = pooled[i * C + c] }
            }
        }
    }

    /// Copies a repeated row's states from the earlier row with the same input.
    private func copyStates(_ repeated: FrozenPlan.Repeat, splits: [DataSplit], caches: inout [[Float]]) {
        let dst = repeated.row * rowFloats(splits[repeated.split])
        let src = repeated.from.row * rowFloats(splits[repeated.from.split])
        if repeated.from.split == repeated.split {
            caches[repeated.split].withUnsafeMutableBufferPointer { o in
                (o.baseAddress! + dst).update(from: o.baseAddress! + src, count: repeated.count)
            }
        } else {
            let source = caches[repeated.from.split]
            caches[repeated.split].withUnsafeMutableBufferPointer { o in
                source.withUnsafeBufferPointer { (o.baseAddress! + dst).update(from: $0.baseAddress! + src, count: repeated.count) }
            }
        }
    }

    /// The frozen layers' output for a batch: pooled vectors (head only) or the input of the lowest trainable block.
    func frozenOutput(_ b: Batch, of split: DataSplit) throws -> TrunkInput {
        let C = config.embDim, B = b.rows.count
        if let cache = split.cache {
            if startBlock == nil {
                var out = [Float](repeating: 0, count: B * C)
                for (i, r) in b.rows.enumerated() { for c in 0..<C { out[i * C + c] = cache[r * C + c] } }
                return .hidden(out)
            }
            let S = split.rows.sequenceLength
            var out = [Float](repeating: 0, count: B * b.length * C)
            for (i, r) in b.rows.enumerated() {
                for t in 0..<b.length {
                    let src = (r * S + t) * C, dst = (i * b.length + t) * C
                    for c in 0..<C { out[dst + c] = cache[src + c] }
                }
            }
            return .hidden(out)
        }
        guard let k = startBlock else {
            let final = try backend.forwardTop(.tokens(b.tokens), batch: B, length: b.length, startBlock: 0,
                                               keepActivations: false)
            return .hidden(head.pool(final: final, length: b.length, pooled: b.pooled))
        }
        if trainable.trainsEmbeddings { return .tokens(b.tokens) }
        return .hidden(try backend.hiddenStates(tokens: b.tokens, batch: B, length: b.length, endBlock: k))
    }

    /// Pooled vectors [B, C] for a batch, keeping activations for a backward pass when training.
    /// `selected` tells whether the backend ran the last block at the pooled positions only
    /// (then the backward pass takes d(pooled) directly).
    func pooledVectors(_ b: Batch, of split: DataSplit, training: Bool) throws -> (pooled: [Float], selected: Bool) {
        let frozen = try frozenOutput(b, of: split)
        guard let k = startBlock else {
            guard case .hidden(let pooled) = frozen else { fatalError("head-only input is pooled vectors") }
            return (pooled, false)
        }
        if selectedPositionShortcut, trainable != .lora, k == config.nLayers - 1, !pooling.averageEmbeddings, case .hidden(let h) = frozen,
           let out = try backend.forwardLastBlockSelected(hidden: h, batch: b.rows.count, length: b.length,
                                                          positions: b.pooled.map(\.lowerBound), keepActivations: training) {
            return (out, true)
        }
        let final = try backend.forwardTop(frozen, batch: b.rows.count, length: b.length, startBlock: k,
                                           keepActivations: training)
        return (head.pool(final: final, length: b.length, pooled: b.pooled), false)
    }

    // MARK: training and inference

    /// Forward and backward on one batch; leaves the gradients of the trainable parameters, of
    /// `scale` x the batch's mean loss, in `gradients` (added to what is there with `accumulate`:
    /// gradient accumulation's later micro-batches) and returns the batch's mean loss.
    public func computeGradients(rows: [Int], of split: DataSplit, scale: Float = 1, accumulate: Bool = false) throws -> Float {
        if gradients.count != parameters.count { gradients = [Float](repeating: 0, count: parameters.count) }
        if !accumulate {
            gradients.withUnsafeMutableBufferPointer { g in
                for i in trainableRange { g[i] = 0 }
            }
        }
        let b = split.rows.batch(rows, pooling: pooling, trim: trimBatches)
        let (pooled, selected) = try pooledVectors(b, of: split, training: true)
        let logits = head.logits(pooled: pooled, parameters: parameters)
        let (loss, unscaled, _) = head.crossEntropy(logits: logits, labels: b.labels)
        let dLogits = scale == 1 ? unscaled : unscaled.map { $0 * scale }
        let dPooled = head.backward(pooled: pooled, dLogits: dLogits, parameters: parameters, gradients: &gradients)
        if selected {
            try backend.backwardTop(dOutput: dPooled, gradients: &gradients)
        } else if startBlock != nil {
            let dFinal = head.unpool(dPooled: dPooled, length: b.length, pooled: b.pooled)
            try backend.backwardTop(dOutput: dFinal, gradients: &gradients)
        }
        return loss
    }

    /// The global norm of the trainable gradients before clipping; clipped to `maxNorm` when given (`GradientClipping`).
    public func clipGradients(maxNorm: Float?) -> Float {
        GradientClipping.clip(&gradients, ranges: [trainableRange], maxNorm: maxNorm)
    }

    /// The logits of each of `rows` (in the order given), computed in chunks grouped by needed length.
    public func logits(rows: [Int], of split: DataSplit) throws -> [[Float]] {
        let data = split.rows
        var order = Array(rows.indices)
        if trimBatches {
            let S = data.sequenceLength
            order.sort { pooling.neededLength(realLength: data.lengths[rows[$0]], sequenceLength: S)
                > pooling.neededLength(realLength: data.lengths[rows[$1]], sequenceLength: S) }
        }
        let K = head.numClasses
        var out = [[Float]](repeating: [], count: rows.count)
        for start in stride(from: 0, to: order.count, by: inferenceChunk) {
            let positions = Array(order[start..<min(start + inferenceChunk, order.count)])
            let b = data.batch(positions.map { rows[$0] }, pooling: pooling, trim: trimBatches)
            let pooled = try pooledVectors(b, of: split, training: false).pooled
            let l = head.logits(pooled: pooled, parameters: parameters)
            for (i, p) in positions.enumerated() { out[p] = Array(l[(i * K)..<((i + 1) * K)]) }
        }
        return out
    }

    /// The book's `calc_loss_loader` / `calc_accuracy_loader` over the given batches: the mean of
    /// the batch-mean losses, and correct / examples.
    /// In a data-parallel run the batches are dealt to the processes and their sums added up.
    public func lossAndAccuracy(batches: [[Int]], of split: DataSplit,
                                parallel: DataParallel = .single) throws -> (loss: Double, accuracy: Double) {
        guard batches.contains(where: { !$0.isEmpty }) else { return (.nan, .nan) }
        let sums = try parallel.sumOverBatches(batches) { try lossAndCorrectSums($0, of: split) }
        return (sums[0] / Double(batches.count), sums[1] / sums[2])
    }

    /// [sum of the batch-mean losses, correct answers, rows] over `batches`.
    func lossAndCorrectSums(_ batches: [[Int]], of split: DataSplit) throws -> [Double] {
        let all = batches.flatMap { $0 }
        guard !all.isEmpty else { return [0, 0, 0] }
        let logits = try self.logits(rows: all, of: split)
        var offset = 0, lossSum = 0.0, correct = 0
        for batch in batches {
            let flat = logits[offset..<(offset + batch.count)].flatMap { $0 }
            let r = head.crossEntropy(logits: flat, labels: batch.map { split.rows.labels[$0] })
            lossSum += Double(r.loss)
            correct += r.correct
            offset += batch.count
        }
        return [lossSum, Double(correct), Double(all.count)]
    }

    /// Sums the processes' gradients of the trainable range (one buffer) and their parts of the loss.
    public func sumGradients(_ parallel: DataParallel, loss: Float) throws -> Float {
        guard parallel.isDistributed else { return loss }
        let range = trainableRange
        try gradients.withUnsafeMutableBufferPointer { g in try parallel.sumGradients(UnsafeMutableBufferPointer(rebasing: g[range])) }
        return try parallel.sumLoss(loss)
    }
}

/// Which rows the frozen layers run on, in which passes, and which rows copy an earlier row's
/// states instead (`ClassifierModel.fillCache`).
struct FrozenPlan {
    /// A row whose input equals an earlier row's: where it goes, which row it copies, and how many
    /// floats (every position it is read at).
    struct Repeat {
        let split: Int, row: Int
        let from: (split: Int, row: Int)
        let count: Int
    }

    /// Per split, the passes: groups of rows run together.
    private(set) var groups: [[[Int]]] = []
    private(set) var repeats: [Repeat] = []
    var rowsToRun: Int { groups.joined().map(\.count).reduce(0, +) }

    init(_ splits: [DataSplit], model: ClassifierModel, chunk: Int) {
        struct RowKey: Hashable { let tokens: ArraySlice<Int32>; let realLength: Int }
        var firstSeen: [RowKey: (split: Int, row: Int)] = [:]
        let C = model.config.embDim
        for (si, split) in splits.enumerated() {
            let rows = split.rows, S = rows.sequenceLength
            var unique: [Int] = []
            for r in 0..<rows.rowCount {
                let n = model.neededLength(rows, r)
                let key = RowKey(tokens: rows.tokens[(r * S)..<(r * S + n)], realLength: rows.lengths[r])
                if let earlier = firstSeen[key] {
                    repeats.append(Repeat(split: si, row: r, from: earlier, count: model.startBlock == nil ? C : n * C))
                } else {
                    firstSeen[key] = (si, r)
                    unique.append(r)
                }
            }
            groups.append(Self.passes(unique, needed: { model.neededLength(rows, $0) }, maxPositions: chunk * S))
        }
    }

    /// Longest first (a stable order among equals): the model's workspace is sized by the first
    /// pass and then reused. Passes of at most `maxPositions` positions; a pass's first row sets
    /// the length all its rows are cut to.
    static func passes(_ rows: [Int], needed: (Int) -> Int, maxPositions: Int) -> [[Int]] {
        let order = rows.sorted { (needed($0), $1) > (needed($1), $0) }
        var groups: [[Int]] = []
        for r in order {
            if let g = groups.last, (g.count + 1) * needed(g[0]) <= maxPositions {
                groups[groups.count - 1].append(r)
            } else {
                groups.append([r])
            }
        }
        return groups
    }
}

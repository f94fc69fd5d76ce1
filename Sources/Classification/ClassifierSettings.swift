import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import TrainingKit

/// Which parameters fine-tuning updates (the book's section 6.5 and its bonus experiments).
public enum TrainableLayers: String, CaseIterable, Codable, Sendable {
    /// Only the new classification head.
    case lastLayer = "last_layer"
    /// The book's default: the last transformer block, the final LayerNorm and the head.
    case lastBlock = "last_block"
    /// The last two transformer blocks, the final LayerNorm and the head.
    case lastTwoBlocks = "last_two_blocks"
    /// Every parameter, embeddings included.
    case all
    /// LoRA adapters on every Linear layer, the head included, everything else frozen (appendix E).
    case lora

    public static func parse(_ text: String) throws -> TrainableLayers {
        guard let v = TrainableLayers(rawValue: text) else {
            throw PipelineError("unknown trainable_layers \"\(text)\"",
                                hint: "use one of: " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return v
    }

    /// The lowest transformer block whose weights change, or nil when no block trains (head only).
    /// Everything below it is frozen, so the hidden states entering it never change.
    public func lowestTrainableBlock(nLayers: Int) -> Int? {
        switch self {
        case .lastLayer: return nil
        case .lastBlock: return nLayers - 1
        case .lastTwoBlocks: return max(0, nLayers - 2)
        case .all, .lora: return 0
        }
    }

    /// Whether the token and position embeddings train too.
    public var trainsEmbeddings: Bool { self == .all }
}

/// Which position's output the classification head reads (the book's `[:, -1, :]` is `last`).
public enum TokenPosition: String, CaseIterable, Codable, Sendable {
    /// The last position of the padded row (the book's choice).
    case last
    /// The first token.
    case first
    /// The last real (non-padding) token of each row.
    case flexible

    public static func parse(_ text: String) throws -> TokenPosition {
        guard let v = TokenPosition(rawValue: text) else {
            throw PipelineError("unknown token_position \"\(text)\"",
                                hint: "use one of: " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return v
    }
}

/// Where the pooled vector the head reads comes from.
public struct Pooling: Codable, Equatable, Sendable {
    public var position: TokenPosition
    /// Mean of the final (normalised) hidden states over each row's real tokens instead of one position.
    public var averageEmbeddings: Bool

    public init(position: TokenPosition = .last, averageEmbeddings: Bool = false) {
        self.position = position
        self.averageEmbeddings = averageEmbeddings
    }

    /// How many leading positions of a row the result depends on. Attention is causal, so the
    /// output at position t depends only on tokens 0...t: anything after the last needed position
    /// (trailing padding for `flexible`, everything after the first token for `first`) can be cut
    /// from the batch without changing a single number.
    public func neededLength(realLength: Int, sequenceLength: Int) -> Int {
        if averageEmbeddings { return max(1, realLength) }
        switch position {
        case .last: return sequenceLength
        case .first: return 1
        case .flexible: return max(1, realLength)
        }
    }

    /// The positions of a row (inside a batch of `batchLength` positions) that are pooled.
    public func pooledPositions(realLength: Int, batchLength: Int) -> Range<Int> {
        if averageEmbeddings { return 0..<max(1, realLength) }
        switch position {
        case .last: return (batchLength - 1)..<batchLength
        case .first: return 0..<1
        case .flexible: let p = max(1, realLength) - 1; return p..<(p + 1)
        }
    }
}

/// Every setting of a training run, named as in pipeline.yaml's `train` params.
public struct ClassifierSettings: Codable, Equatable, Sendable, BaseWeightChoice, LoopSettings {
    public var model: String = "gpt2-small"
    /// "pretrained" (weights from `weightsFile`) or "random" (seeded initialisation).
    public var weights: String = "pretrained"
    public var weightsFile: String? = nil
    public var seed: UInt64 = 123
    public var trainableLayers: TrainableLayers = .lastBlock
    public var pooling = Pooling()
    public var learningRate: Float = 5e-5
    public var weightDecay: Float = 0.1
    public var epochs: Int = 5
    public var batchSize: Int = 8
    public var evalFreq: Int = 50
    public var evalIter: Int = 5
    public var saveEvery: Int = 50
    /// Reuse the hidden states entering the lowest trainable block (exact when frozen layers have no dropout).
    public var cacheFrozenTrunk: Bool = true
    /// Cut each batch to the positions the pooled output depends on (exact; see `Pooling.neededLength`).
    public var trimBatches: Bool = true
    /// LoRA rank and alpha (used when trainableLayers is lora; the book's appendix E: 16 and 16).
    public var loraRank: Int = 16
    public var loraAlpha: Float = 16

    public init() {}

    /// The LoRA settings when training with adapters, nil otherwise.
    public var lora: LoRASettings? {
        trainableLayers == .lora ? LoRASettings(rank: loraRank, alpha: loraAlpha) : nil
    }

    public func validate() throws {
        try validateWeightChoice()
        try validateLoop()
        try lora?.validate(rankLocation: "train.lora_rank", alphaLocation: "train.lora_alpha")
    }

    /// The settings as manifest params (also what a resume state must match).
    public var asJSON: [String: JSONValue] {
        [
            "model": .string(model), "weights": .string(weights), "weights_file": weightsFile.map { .string($0) } ?? .null,
            "seed": .int(Int(seed)), "trainable_layers": .string(trainableLayers.rawValue),
            "token_position": .string(pooling.position.rawValue), "average_embeddings": .bool(pooling.averageEmbeddings),
            "lr": .double(Double("\(learningRate)") ?? Double(learningRate)),
            "weight_decay": .double(Double("\(weightDecay)") ?? Double(weightDecay)), "epochs": .int(epochs),
            "batch_size": .int(batchSize), "eval_freq": .int(evalFreq), "eval_iter": .int(evalIter),
        ].merging(lora.map(\.asJSON) ?? [:]) { a, _ in a }
    }

    /// The settings that decide the numbers a run produces; a resume state must have been made with the same ones.
    /// (`epochs` may grow on resume; save_every, caching and trimming do not change any result.)
    var resumeKey: String {
        var j = asJSON
        j["epochs"] = nil
        return JSONValue.object(j).canonicalString
    }
}

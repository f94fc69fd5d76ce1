import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import Quantization
import TrainingKit

/// Which position's output the classification head reads (the book's `[:, -1, :]` is `last`).
public enum TokenPosition: String, CaseIterable, Codable, Sendable {
    /// The last position of the padded row (the book's choice).
    case last
    /// The first token.
    case first
    /// The last real (non-padding) token of each row.
    case flexible

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

/// Every setting of a training run, named as in pipeline.yaml's `train` params. The loop's
/// settings (seed, lr, epochs, ...) are read and written through `loop` as if they were this
/// type's own (`settings.learningRate`).
@dynamicMemberLookup
public struct ClassifierSettings: TrainerSettings, BaseModelSettings, Equatable, Sendable {
    public var base = BaseModelChoice(model: "gpt2-small")
    public var loop = LoopSettings(epochs: 5, evalFreq: 50)
    public var trainableLayers: TrainableLayers = .lastBlock
    public var pooling = Pooling()
    /// Reuse the hidden states entering the lowest trainable block (exact when frozen layers have no dropout).
    public var cacheFrozenTrunk: Bool = true
    /// Cut each batch to the positions the pooled output depends on (exact; see `Pooling.neededLength`).
    public var trimBatches: Bool = true
    /// Bytes the cached frozen-layer states may take (nil: half the machine's memory). Over it,
    /// the frozen layers run for every batch instead: the same numbers, more time, no running
    /// out of memory. Changes no number, so it is not part of the coded settings.
    public var frozenMemoryBudget: Int? = nil
    public var frozenStateBudget: Int { frozenMemoryBudget ?? ProcessMemory.physicalBytes / 2 }
    /// LoRA rank and alpha (used when trainableLayers is lora; the book's appendix E: 16 and 16).
    public var loraRank: Int = 16
    public var loraAlpha: Float = 16
    /// QLoRA (with LoRA only): the frozen base's Linear weights held as NF4 or int8 (and its token
    /// embedding as int8), written once to `<out>/quantized-base.bin` and reused; the
    /// classification head and every adapter stay float32 (docs/qlora.md).
    public var quantizeBase: BaseQuantization = .none

    public init() {}

    /// The LoRA settings when training with adapters, nil otherwise.
    public var loraSettings: LoRASettings? {
        trainableLayers == .lora ? LoRASettings(rank: loraRank, alpha: loraAlpha) : nil
    }

    public func validate() throws {
        try base.validate()
        try loop.validate()
        try loraSettings?.validate(rankLocation: "train.lora_rank", alphaLocation: "train.lora_alpha")
        try quantizeBase.requireLoRA(trainableLayers == .lora,
                                     addLoRA: "add --trainable-layers lora (pipeline: --set train.trainable_layers=lora)")
        if let budget = frozenMemoryBudget, budget < 0 {
            throw PipelineError("the frozen-layer memory budget must not be negative", location: "--frozen-memory-budget")
        }
    }

    enum CodingKeys: String, CodingKey {
        case trainableLayers = "trainable_layers",
             tokenPosition = "token_position", averageEmbeddings = "average_embeddings", quantizeBase = "quantize_base"
    }

    /// Reads what `encode` writes (a manifest's params, a checkpoint's `training_settings`); the
    /// switches that change no number (caching, trimming, save_every) keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        base = try BaseModelChoice(from: decoder)
        loop = try LoopSettings(from: decoder)
        trainableLayers = try c.decode(TrainableLayers.self, forKey: .trainableLayers)
        pooling = Pooling(position: try c.decodeIfPresent(TokenPosition.self, forKey: .tokenPosition) ?? .last,
                          averageEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .averageEmbeddings) ?? false)
        let adapters = try LoRASettings(flatFrom: decoder, defaults: LoRASettings(rank: loraRank, alpha: loraAlpha))
        (loraRank, loraAlpha) = (adapters.rank, adapters.alpha)
        quantizeBase = try c.decodeIfPresent(BaseQuantization.self, forKey: .quantizeBase) ?? .none
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(trainableLayers, forKey: .trainableLayers)
        try c.encode(pooling.position, forKey: .tokenPosition)
        try c.encode(pooling.averageEmbeddings, forKey: .averageEmbeddings)
        try base.encode(to: encoder)
        try loop.encode(to: encoder)
        try loraSettings?.encodeFlat(to: encoder)
        // Only when on, so runs without it keep the settings (and resume keys) they had.
        if quantizeBase != .none { try c.encode(quantizeBase, forKey: .quantizeBase) }
    }
}

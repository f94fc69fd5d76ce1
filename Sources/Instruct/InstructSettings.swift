import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import Quantization
import TrainingKit

/// Every setting of an instruction fine-tuning run (chapter 7), named as in
/// pipelines/instruct.yaml's `train` params. The defaults are the book's. The loop's settings
/// (seed, lr, epochs, ...) are read and written through `loop` as this type's own.
@dynamicMemberLookup
public struct InstructSettings: TrainerSettings, BaseModelSettings, Equatable, Sendable {
    /// The book fine-tunes gpt2-medium (355M); gpt2-small is enough to exercise the pipeline.
    public var base = BaseModelChoice(model: "gpt2-medium")
    /// How `weights: random` is drawn. GPT-2's scheme by default: our output head is tied to the
    /// token embedding, and PyTorch's N(0, 1) embedding (`.torch`, the book's GPTModel, which has
    /// a separate head) would start the loss in the hundreds. Unused for pretrained weights.
    public var initScheme: InitScheme = .gpt2
    public var loop = LoopSettings(epochs: 2, evalFreq: 5)
    /// Exercise 7.2: the loss covers only the response (and the end-of-text token).
    public var maskInstructions: Bool = false
    /// The book's `allowed_max_length` of the collate function.
    public var allowedMaxLength: Int = 1024
    /// `all` (the book's chapter 7) or `lora` (appendix E: every original parameter frozen,
    /// adapters on every Linear layer, the tied output head included, with `loraRank` and `loraAlpha`).
    public var trainableLayers: TrainableLayers = .all
    public var loraRank: Int = 16
    public var loraAlpha: Float = 16
    /// QLoRA: the frozen base's Linear weights held as NF4 or int8 (LoRA only).
    public var quantizeBase: BaseQuantization = .none
    /// Activation checkpointing: blocks recompute their activations in the backward pass
    /// (`GPT2Model.recomputesActivations`): much less memory, one more forward pass, same numbers.
    public var gradientCheckpointing = false

    public init() {}

    /// The older spelling of `trainableLayers == .lora` (`--lora true`, param `train.lora`).
    public var lora: Bool {
        get { trainableLayers == .lora }
        set { trainableLayers = newValue ? .lora : .all }
    }

    /// The LoRA settings when `lora` is on, nil otherwise.
    public var loraSettings: LoRASettings? { lora ? LoRASettings(rank: loraRank, alpha: loraAlpha) : nil }

    public func validate() throws {
        try base.validate()
        guard trainableLayers == .all || trainableLayers == .lora else {
            throw PipelineError("train instruct trains every parameter or LoRA adapters, not \(trainableLayers.rawValue)",
                                location: "train.trainable_layers", hint: "use all or lora")
        }
        try loraSettings?.validate(rankLocation: "train.lora_rank", alphaLocation: "train.lora_alpha")
        try quantizeBase.requireLoRA(lora, addLoRA: "add --lora true (pipeline: --set train.lora=true)")
        try loop.validate()
        guard loop.controls.bestMetric == .loss else {
            throw PipelineError("best_metric accuracy is the classifier's; train instruct measures only losses",
                                location: "train.best_metric", hint: "use best_metric loss")
        }
        guard allowedMaxLength >= 2 else {
            throw PipelineError("allowed_max_length must be at least 2", location: "train.allowed_max_length")
        }
    }

    enum CodingKeys: String, CodingKey {
        case initScheme = "init", maskInstructions = "mask_instructions",
             allowedMaxLength = "allowed_max_length", lora, quantizeBase = "quantize_base",
             gradientCheckpointing = "gradient_checkpointing"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        base = try BaseModelChoice(from: decoder)
        initScheme = try c.decodeIfPresent(InitScheme.self, forKey: .initScheme) ?? .gpt2
        loop = try LoopSettings(from: decoder)
        maskInstructions = try c.decodeIfPresent(Bool.self, forKey: .maskInstructions) ?? false
        allowedMaxLength = try c.decodeIfPresent(Int.self, forKey: .allowedMaxLength) ?? allowedMaxLength
        lora = try c.decodeIfPresent(Bool.self, forKey: .lora) ?? false
        quantizeBase = try c.decodeIfPresent(BaseQuantization.self, forKey: .quantizeBase) ?? .none
        gradientCheckpointing = try c.decodeIfPresent(Bool.self, forKey: .gradientCheckpointing) ?? false
        let adapters = try LoRASettings(flatFrom: decoder, defaults: LoRASettings(rank: loraRank, alpha: loraAlpha))
        (loraRank, loraAlpha) = (adapters.rank, adapters.alpha)
    }

    public func encode(to encoder: Encoder) throws {
        try base.encode(to: encoder)
        try loop.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(initScheme, forKey: .initScheme)
        try c.encode(maskInstructions, forKey: .maskInstructions)
        try c.encode(allowedMaxLength, forKey: .allowedMaxLength)
        try c.encode(lora, forKey: .lora)
        // Only when on, so runs without it keep the settings (and resume keys) they had.
        if quantizeBase != .none { try c.encode(quantizeBase, forKey: .quantizeBase) }
        if gradientCheckpointing { try c.encode(gradientCheckpointing, forKey: .gradientCheckpointing) }
        try loraSettings?.encodeFlat(to: encoder)
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import TrainingKit

/// Every setting of an instruction fine-tuning run (chapter 7), named as in
/// pipelines/instruct.yaml's `train` params. The defaults are the book's.
public struct InstructSettings: Codable, Equatable, Sendable, BaseWeightChoice, LoopSettings {
    /// The book fine-tunes gpt2-medium (355M); gpt2-small is enough to exercise the pipeline.
    public var model: String = "gpt2-medium"
    /// "pretrained" (weights from `weightsFile`) or "random" (seeded initialisation).
    public var weights: String = "pretrained"
    public var weightsFile: String? = nil
    /// How `weights: random` is drawn. GPT-2's scheme by default: our output head is tied to the
    /// token embedding, and PyTorch's N(0, 1) embedding (`.torch`, the book's GPTModel, which has
    /// a separate head) would start the loss in the hundreds. Unused for pretrained weights.
    public var initScheme: InitScheme = .gpt2
    public var seed: UInt64 = 123
    public var learningRate: Float = 5e-5
    public var weightDecay: Float = 0.1
    public var epochs: Int = 2
    public var batchSize: Int = 8
    public var evalFreq: Int = 5
    public var evalIter: Int = 5
    public var saveEvery: Int = 50
    /// Exercise 7.2: the loss covers only the response (and the end-of-text token).
    public var maskInstructions: Bool = false
    /// The book's `allowed_max_length` of the collate function.
    public var allowedMaxLength: Int = 1024
    /// Appendix E (LoRA): every original parameter frozen, adapters on every Linear layer (the
    /// tied output head included) train, with `loraRank` and `loraAlpha`.
    public var lora: Bool = false
    public var loraRank: Int = 16
    public var loraAlpha: Float = 16

    /// The LoRA settings when `lora` is on, nil otherwise.
    public var loraSettings: LoRASettings? { lora ? LoRASettings(rank: loraRank, alpha: loraAlpha) : nil }
    /// Stop after this many optimizer steps in total and write the outputs (a shorter run than
    /// `epochs` asks for; nil: no limit). Does not change any number up to that step.
    public var maxSteps: Int? = nil

    public init() {}

    public func validate() throws {
        try validateWeightChoice()
        try loraSettings?.validate(rankLocation: "train.lora_rank", alphaLocation: "train.lora_alpha")
        try validateLoop()
        guard allowedMaxLength >= 2 else {
            throw PipelineError("allowed_max_length must be at least 2", location: "train.allowed_max_length")
        }
    }

    /// The settings as manifest params.
    public var asJSON: [String: JSONValue] {
        [
            "model": .string(model), "weights": .string(weights), "weights_file": weightsFile.map { .string($0) } ?? .null,
            "init": .string(initScheme.rawValue),
            "seed": .int(Int(seed)), "lr": .double(Double(learningRate)), "weight_decay": .double(Double(weightDecay)),
            "epochs": .int(epochs), "batch_size": .int(batchSize), "eval_freq": .int(evalFreq), "eval_iter": .int(evalIter),
            "mask_instructions": .bool(maskInstructions), "allowed_max_length": .int(allowedMaxLength),
            "lora": .bool(lora), "max_steps": maxSteps.map { .int($0) } ?? .null,
        ].merging(loraSettings.map(\.asJSON) ?? [:]) { a, _ in a }
    }

    /// The settings that decide the numbers a run produces; a resume state must have been made with
    /// the same ones. `epochs` and `max_steps` may grow on resume (they only decide where to stop).
    var resumeKey: String {
        var j = asJSON
        j["epochs"] = nil
        j["max_steps"] = nil
        return JSONValue.object(j).canonicalString
    }
}

import ArgumentParser
import Classification
import Instruct
import TrainingKit

/// The options `train classifier` and `train instruct` share, with the book's values as defaults
/// (where the chapters differ — model, epochs, eval_freq — each command keeps its own option).
struct CommonTrainOptions: ParsableArguments {
    @Option(help: "pretrained (from --weights-file) or random (seeded).") var weights = "pretrained"
    @Option(help: "Hugging Face GPT-2 model.safetensors (or the folder holding it) for --weights pretrained.") var weightsFile: String?
    @Option(help: "Seed of random weights, the head initialisation and the batch order.") var seed: UInt64 = 123
    @Option(help: "AdamW learning rate.") var lr: Float = 5e-5
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0.1
    @Option(help: "Batch size (the last incomplete training batch is dropped).") var batchSize = 8
    @Option(help: "Batches per loader used by the loss evaluations (and the classifier's epoch accuracies).") var evalIter = 5
    @Option(help: "Write the resumable state every this many steps (0: only at the end and on Ctrl-C).") var saveEvery = 50
    @Flag(help: "Continue from --out/state (it must exist and match these options and inputs).") var resume = false
    @Flag(help: "Continue --out/state if an interrupted run with these options and inputs left it; otherwise start over (pipeline.yaml uses this, so rerunning an interrupted stage continues it).")
    var continueInterrupted = false

    /// The resume mode of the two flags.
    func resumeMode() throws -> ResumeMode {
        if resume && continueInterrupted { throw ValidationError("give --resume or --continue-interrupted, not both") }
        return resume ? .required : continueInterrupted ? .ifInterrupted : .never
    }
}

/// LoRA's rank and alpha (appendix E; the book uses 16 and 16). Used only when LoRA is on.
struct LoRAOptions: ParsableArguments {
    @Option(help: "LoRA rank (with --trainable-layers lora / --lora true).") var loraRank = 16
    @Option(help: "LoRA alpha: the adapter output is scaled by alpha (not alpha / rank), as in the book.") var loraAlpha: Float = 16
}

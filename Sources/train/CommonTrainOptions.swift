import ArgumentParser
import Quantization
import Classification
import Distributed
import Foundation
import GPT2Weights
import ToolSupport
import TrainingKit

extension WeightsSource: ExpressibleByArgument {}
extension TrainableLayers: ExpressibleByArgument {}
extension TokenPosition: ExpressibleByArgument {}
extension InitScheme: ExpressibleByArgument {}
extension LRScheduleKind: ExpressibleByArgument {}
extension EvalStrategy: ExpressibleByArgument {}
extension BestMetric: ExpressibleByArgument {}
extension BaseQuantization: ExpressibleByArgument {}

/// The options `train classifier` and `train instruct` share, with the book's values as defaults
/// (where the chapters differ — model, epochs, eval_freq — each command keeps its own option).
struct CommonTrainOptions: ParsableArguments {
    @Option(help: "Where the base weights come from: pretrained (--weights-file) or random (seeded).") var weights = WeightsSource.pretrained
    @Option(help: "Hugging Face GPT-2 model.safetensors (or the folder holding it) for --weights pretrained.") var weightsFile: Path?
    @Option(help: "Seed of random weights, the head initialisation and the batch order.") var seed: UInt64 = 123
    @Option(help: "AdamW learning rate.") var lr: Float = 5e-5
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0.1
    @Option(help: "Batch size (the last incomplete training batch is dropped).") var batchSize = 8
    @Option(help: "Batches per loader used by the loss evaluations (and the classifier's epoch accuracies).") var evalIter = 5
    @Option(help: "Write the resumable state every this many steps (0: only at the end and on Ctrl-C).") var saveEvery = 50
    @Option(help: "Stop after this many steps in total and write the outputs (a shortened run; 0: no limit).") var maxSteps = 0
    @Flag(help: "Continue from --out/state (it must exist and match these options and inputs).") var resume = false
    @Flag(help: "Continue --out/state if an interrupted run with these options and inputs left it; otherwise start over (the pipeline files use this, so rerunning an interrupted stage continues it).")
    var continueInterrupted = false
    @Option(help: "LoRA rank (with --trainable-layers lora).") var loraRank = 16
    @Option(help: "LoRA alpha: the adapter output is scaled by alpha (not alpha / rank), as in the book.") var loraAlpha: Float = 16
    @Option(help: "QLoRA (with LoRA only: --trainable-layers lora, or --lora true for instruct): hold the frozen base's Linear weights as nf4 or int8 (the token embedding as int8), written once to <out>/quantized-base.bin and reused (none: float32).") var quantizeBase = BaseQuantization.none
    @Option(help: "Learning rate after the warmup: constant (the book's), linear or cosine decay to --min-lr at the last step.") var lrSchedule = LRScheduleKind.constant
    @Option(help: "Linear warmup from --initial-lr to --lr over this many optimizer steps (0: none).") var warmupSteps = 0
    @Option(help: "Or warmup over ceil(ratio x the run's optimizer steps), ratio in [0, 1) (0: none).") var warmupRatio = 0.0
    @Option(help: "Where the warmup starts (the book's appendix D initial_lr; 0 as transformers).") var initialLr = 0.0
    @Option(help: "Where the linear or cosine decay ends (appendix D's min_lr; 0 as transformers).") var minLr = 0.0
    @Option(help: "Clip the global L2 norm of the trainable gradients to this (0: no clipping).") var maxGradNorm = 0.0
    @Option(help: "Micro-batches of --batch-size rows per optimizer step (the update of one batch this many times larger).") var gradAccum = 1
    @Option(help: "When the losses are evaluated: steps (every --eval-freq steps) or epoch (after each epoch).") var evalStrategy = EvalStrategy.steps
    @Option(help: "true: keep best/model.safetensors, the checkpoint of the best validation evaluation, beside the last one.") var saveBest = false
    @Option(help: "Stop after this many evaluations in a row without a better validation value (0: never).") var earlyStoppingPatience = 0
    @Option(help: "Processes sharing every batch (data parallelism over Open MPI, same results as one process; more than 1 starts this command again under mpirun -np N; see docs/distributed.md).") var processes = 1
    @Option(help: "With --processes: an Open MPI hostfile of the machines to run on (none: this machine).") var hostfile = "none"
    @Option(help: "Under mpirun: seconds a process waits for the others in one exchange before it stops the job (one of them died or hangs; 0: wait forever).") var processTimeout = 600.0

    /// The resume mode of the two flags.
    func resumeMode() throws -> ResumeMode {
        if resume && continueInterrupted { throw ValidationError("give --resume or --continue-interrupted, not both") }
        return resume ? .required : continueInterrupted ? .ifInterrupted : .never
    }

    /// Sets the base model and the loop's settings; `model`, `epochs` and `evalFreq` are each
    /// command's own (their defaults differ between the chapters).
    func apply<S: TrainerSettings & BaseModelSettings>(to s: inout S, model: String, epochs: Int, evalFreq: Int) {
        s.base = BaseModelChoice(model: model, weights: weights, weightsFile: weightsFile?.text)
        apply(to: &s.loop, epochs: epochs, evalFreq: evalFreq)
    }

    private func apply(to loop: inout LoopSettings, epochs: Int, evalFreq: Int) {
        loop.seed = seed
        loop.learningRate = lr
        loop.weightDecay = weightDecay
        loop.batchSize = batchSize
        loop.evalIter = evalIter
        loop.saveEvery = saveEvery
        loop.maxSteps = maxSteps > 0 ? maxSteps : nil
        loop.epochs = epochs
        loop.evalFreq = evalFreq
        loop.controls = controls(bestMetric: loop.controls.bestMetric)
    }

    /// The training controls of the flags (`bestMetric` is the classifier command's own option).
    private func controls(bestMetric: BestMetric) -> TrainingControls {
        TrainingControls(lrSchedule: lrSchedule, warmupSteps: warmupSteps, warmupRatio: warmupRatio, initialLR: initialLr,
                         minLR: minLr, maxGradNorm: maxGradNorm, gradAccum: gradAccum, evalStrategy: evalStrategy,
                         saveBest: saveBest, bestMetric: bestMetric, earlyStoppingPatience: earlyStoppingPatience)
    }
}

/// Reports the end of a run; an interrupted one exits with 130 after saying how to continue.
/// Runs a training command as the only process, or as one process of `mpirun -np N train ...`
/// (docs/distributed.md): `body` gets the job's processes and, on process 0 only, the console
/// (the others print nothing but errors). A Ctrl-C stops every process after the same step;
/// each then leaves MPI cleanly before the exit code says it was interrupted.
func runAsJob(_ common: CommonTrainOptions, _ body: (DataParallel, ConsoleProgress?) throws -> Void) throws {
    var interrupted: ExitCode?
    try MPILauncher.relaunchIfNeeded(processes: common.processes, hostfile: common.hostfile == "none" ? nil : common.hostfile)
    try DistributedJob.run(timeout: common.processTimeout) { collective in
        try MPILauncher.check(processes: common.processes, jobSize: collective.size)
        let parallel = DataParallel(collective)
        let console = parallel.writesOutputs ? ConsoleProgress() : nil
        if parallel.isDistributed {
            console?.note("\(parallel.size) processes share every batch (process 0 on \(collective.host) writes the outputs)")
        }
        do { try body(parallel, console) } catch let e as ExitCode { interrupted = e }
    }
    if let interrupted { throw interrupted }
}

func finishRun(_ outcome: TrainingOutcome, out: Path, console: ConsoleProgress, summary: () -> String) throws {
    if outcome.interrupted {
        console.notePeakMemory()
        console.note("interrupted after step \(outcome.steps): state saved to \(out.appending("state")); continue with the same options and --resume")
        throw ExitCode(130)
    }
    console.note(summary())
    if outcome.best.stoppedEarly {
        console.note("stopped early at step \(outcome.steps): no better validation value for \(outcome.best.evaluationsWithoutImprovement) evaluations (best at step \(outcome.best.step))")
    }
    let best = FileManager.default.fileExists(atPath: out.appending(TrainingRun.bestModelFile)) ? ", \(TrainingRun.bestModelFile)" : ""
    console.note("wrote \(out)/model.safetensors\(best), log.jsonl, state, manifest.json")
    console.notePeakMemory()
}

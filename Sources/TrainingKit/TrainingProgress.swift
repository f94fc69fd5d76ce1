import ArtifactKit
import Foundation

/// Ctrl-C (SIGINT) or SIGTERM during training: the handler only raises a flag; the loop notices it
/// after the current step, saves the resumable state and stops. A second signal ends the process at once.
public enum InterruptFlag {
    nonisolated(unsafe) static var raised: Int32 = 0

    public static var isRaised: Bool { raised != 0 }

    public static func installSIGINTHandler() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                InterruptFlag.raised = 1
                signal(s, SIG_DFL)
            }
        }
    }

    public static func reset() { raised = 0 }
}

/// What a stage reports while it runs, through one callback (`ProgressHandler`): the console prints
/// it, tests ignore it, another front end (a server, a notebook) can show it its own way.
public enum ProgressEvent: Sendable {
    /// Training starts (or resumes after `doneSteps`) and will run `totalSteps` optimizer steps.
    case started(totalSteps: Int, doneSteps: Int)
    /// One optimizer step finished, with the learning rate it used and (when measured: at logged
    /// steps, or at every step when clipping) its gradient norm before clipping.
    case step(step: Int, totalSteps: Int, epoch: Int, loss: Float, lr: Float, gradNorm: Float?)
    /// A record was added to the training log.
    case logged(LogRecord)
    /// Anything else worth a line: what a phase did, where its input came from, a warning.
    case note(String)
}

/// The one callback progress reaches the caller through.
public typealias ProgressHandler = (ProgressEvent) -> Void

/// Ignores every event (the default of the stages, and what tests pass).
public let silentProgress: ProgressHandler = { _ in }

/// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise one line per log record.
public final class ConsoleProgress: @unchecked Sendable {
    let isTerminal: Bool
    let start = Date()
    var lastDraw = Date.distantPast

    public init(isTerminal: Bool = isatty(2) != 0) { self.isTerminal = isTerminal }

    /// The callback to hand to a stage.
    public var callback: ProgressHandler { { [self] in handle($0) } }

    public func handle(_ event: ProgressEvent) {
        switch event {
        case .started(let total, let done): if done > 0 { note("resuming at step \(done) of \(total)") }
        case .step(let step, let total, let epoch, let loss, let lr, _): drawBar(step: step, totalSteps: total, epoch: epoch, loss: loss, lr: lr)
        case .logged(let r): logged(r)
        case .note(let text): note(text)
        }
    }

    func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

    func drawBar(step: Int, totalSteps: Int, epoch: Int, loss: Float, lr: Float) {
        guard isTerminal, Date().timeIntervalSince(lastDraw) > 0.2 || step == totalSteps else { return }
        lastDraw = Date()
        let width = 30
        let filled = totalSteps == 0 ? width : width * step / totalSteps
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = Date().timeIntervalSince(start)
        let eta = step > 0 ? elapsed / Double(step) * Double(totalSteps - step) : 0
        write(String(format: "\r[%@] step %d/%d  epoch %d  loss %.3f  lr %.3g  %.0fs (eta %.0fs) ",
                     bar, step, totalSteps, epoch, loss, lr, elapsed, eta))
        if step == totalSteps { write("\n") }
    }

    func logged(_ r: LogRecord) {
        var parts = ["ep \(r.epoch) (step \(r.step))"]
        if let t = r.trainLoss, let v = r.valLoss { parts.append(String(format: "train loss %.3f, val loss %.3f", t, v)) }
        if let t = r.trainAccuracy, let v = r.valAccuracy {
            parts.append(String(format: "training accuracy %.2f%% | validation accuracy %.2f%%", t * 100, v * 100))
        }
        if let lr = r.learningRate { parts.append(String(format: "lr %.3g", lr)) }
        if let g = r.gradNorm { parts.append(String(format: "grad norm %.4g", g)) }
        if r.kind == "early_stop" { parts.append("early stop") }
        parts.append(String(format: "%.1fs", r.elapsedSeconds))
        let line = parts.joined(separator: "  ")
        write(isTerminal ? "\r\u{1B}[K" + line + "\n" : line + "\n")
    }

    public func note(_ text: String) { write((isTerminal ? "\r\u{1B}[K" : "") + text + "\n") }
}

/// What a training run ended with.
public struct TrainingOutcome {
    public var log: [LogRecord]
    public var steps: Int
    public var examplesSeen: Int
    public var elapsedSeconds: Double
    /// True when stopped early (Ctrl-C or `stopAfterSteps`); the state file holds where.
    public var interrupted: Bool
    /// The best evaluation of the tracked metric, and whether early stopping ended the run.
    public var best = BestTracker()
}

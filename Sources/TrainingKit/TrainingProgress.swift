import ArtifactKit
import Foundation

/// Ctrl-C (SIGINT) or SIGTERM during training: the handler only raises a flag; the loop notices it
/// after the current step, saves the resumable state and stops. A second signal ends the process at once.
public enum InterruptFlag {
    nonisolated(unsafe) static var raised: Int32 = 0

    public static var isRaised: Bool { raised != 0 }

    /// Ctrl-C (SIGINT), SIGTERM, and SIGUSR1 (which mpirun forwards to every process of a job,
    /// so `kill -USR1 <mpirun's pid>` stops a data-parallel run cleanly) raise the flag.
    public static func installSIGINTHandler() {
        for sig in [SIGINT, SIGTERM, SIGUSR1] {
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
    /// A long phase outside the steps (the frozen-layer pass, generation): `done` of `total` units.
    case phase(name: String, done: Int, total: Int)
    /// Anything else worth a line: what a phase did, where its input came from, a warning.
    case note(String)
}

/// The one callback progress reaches the caller through.
public typealias ProgressHandler = (ProgressEvent) -> Void

/// Ignores every event (the default of the stages, and what tests pass).
public let silentProgress: ProgressHandler = { _ in }

/// Progress on stderr: a redrawn bar when stderr is a terminal; otherwise (a log file) one line
/// per log record plus a progress line with the ETA every `quietInterval` seconds, so a long
/// phase is never silent for minutes.
public final class ConsoleProgress: @unchecked Sendable {
    let isTerminal: Bool
    let start = Date()
    var lastDraw = Date.distantPast
    /// When the current phase started (ETAs are per phase).
    var phaseStart = Date()
    public var quietInterval: TimeInterval = 5

    /// Where the text goes (stderr; tests collect it).
    let sink: (String) -> Void

    public init(isTerminal: Bool = isatty(2) != 0, sink: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.isTerminal = isTerminal
        self.sink = sink
    }

    /// The callback to hand to a stage.
    public var callback: ProgressHandler { { [self] in handle($0) } }

    public func handle(_ event: ProgressEvent) {
        switch event {
        case .started(let total, let done): if done > 0 { note("resuming at step \(done) of \(total)") }
        case .step(let step, let total, let epoch, let loss, let lr, _): drawBar(step: step, totalSteps: total, epoch: epoch, loss: loss, lr: lr)
        case .phase(let name, let done, let total): drawPhase(name, done: done, total: total)
        case .logged(let r): logged(r)
        case .note(let text): note(text)
        }
    }

    func write(_ s: String) { sink(s) }

    func drawBar(step: Int, totalSteps: Int, epoch: Int, loss: Float, lr: Float) {
        let text = String(format: "step %d/%d  epoch %d  loss %.3f  lr %.3g", step, totalSteps, epoch, loss, lr)
        draw(text, done: step, total: totalSteps, since: start)
    }

    func drawPhase(_ name: String, done: Int, total: Int) {
        if done == 0 { phaseStart = Date() }
        draw("\(name): \(done)/\(total)", done: done, total: total, since: phaseStart)
    }

    /// A bar redrawn in place on a terminal (at most every 0.2 s); a plain line every
    /// `quietInterval` seconds otherwise. Both end with the elapsed time and the ETA (the mean
    /// rate so far times what is left), and both show the last unit.
    func draw(_ text: String, done: Int, total: Int, since: Date) {
        let now = Date(), last = done == total
        guard now.timeIntervalSince(lastDraw) > (isTerminal ? 0.2 : quietInterval) || last else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(since)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        let times = "\(TextFormat.duration(elapsed)) (eta \(eta.isNaN ? "?" : TextFormat.duration(eta)))"
        guard isTerminal else { return write(text + "  " + times + "\n") }
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        write("\r\u{1B}[K[\(bar)] \(text)  \(times) " + (last ? "\n" : ""))
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

    /// The last line of a run: the process's peak resident memory.
    public func notePeakMemory() {
        if let bytes = ProcessMemory.peakResidentBytes { note("peak memory \(TextFormat.bytes(bytes))") }
    }
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

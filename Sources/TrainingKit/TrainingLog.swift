import ArtifactKit
import Foundation

/// One line of `log.jsonl`. `kind` is "eval" (losses on `eval_iter` batches every `eval_freq`
/// steps, like the book's `evaluate_model`, or at each epoch's end with `eval_strategy: epoch`),
/// "epoch" (accuracies on `eval_iter` batches at the end of each epoch, like its
/// `calc_accuracy_loader(..., num_batches=eval_iter)`) or "early_stop" (the run ended there: the
/// best metric did not improve for `early_stopping_patience` evaluations).
public struct LogRecord: Codable, Equatable, Sendable {
    public var kind: String
    /// Optimizer steps done so far (the book's `global_step` + 1).
    public var step: Int
    /// 1-based epoch the record belongs to.
    public var epoch: Int
    /// Epochs done as a fraction (step / steps per epoch), the x axis of the plots.
    public var epochProgress: Double
    public var examplesSeen: Int
    public var trainLoss: Double?
    public var valLoss: Double?
    public var trainAccuracy: Double?
    public var valAccuracy: Double?
    /// "eval": the learning rate of the step just taken and the L2 norm of its gradients before clipping.
    public var learningRate: Double?
    public var gradNorm: Double?
    public var elapsedSeconds: Double

    public init(kind: String, step: Int, epoch: Int, epochProgress: Double, examplesSeen: Int, trainLoss: Double? = nil,
                valLoss: Double? = nil, trainAccuracy: Double? = nil, valAccuracy: Double? = nil, learningRate: Double? = nil,
                gradNorm: Double? = nil, elapsedSeconds: Double) {
        self.kind = kind
        self.step = step
        self.epoch = epoch
        self.epochProgress = epochProgress
        self.examplesSeen = examplesSeen
        self.trainLoss = trainLoss
        self.valLoss = valLoss
        self.trainAccuracy = trainAccuracy
        self.valAccuracy = valAccuracy
        self.learningRate = learningRate
        self.gradNorm = gradNorm
        self.elapsedSeconds = elapsedSeconds
    }

    enum CodingKeys: String, CodingKey {
        case kind, step, epoch, epochProgress = "epoch_progress", examplesSeen = "examples_seen",
             trainLoss = "train_loss", valLoss = "val_loss", trainAccuracy = "train_accuracy",
             valAccuracy = "val_accuracy", learningRate = "lr", gradNorm = "grad_norm", elapsedSeconds = "elapsed_seconds"
    }

    public func jsonLine() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The text of a `log.jsonl` holding `records`: one JSON line each.
    public static func jsonLines(_ records: [LogRecord]) -> Data {
        Data(records.map { $0.jsonLine() + "\n" }.joined().utf8)
    }

    /// Reads a `log.jsonl`, naming the line that does not parse.
    public static func readLog(_ url: URL) throws -> [LogRecord] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw PipelineError("cannot read the training log", location: url.path, hint: "rerun `train`")
        }
        var out: [LogRecord] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do { out.append(try JSONDecoder().decode(LogRecord.self, from: Data(line.utf8))) } catch {
                throw PipelineError("line \(i + 1) is not a log record: \(error)", location: url.path, hint: "rerun `train`")
            }
        }
        return out
    }

    /// Training rows per epoch (batches per epoch x batch size), from the last record: its
    /// examples seen over its epochs done. The plots' second x axis.
    public static func examplesPerEpoch(_ log: [LogRecord]) -> Double {
        guard let last = log.last, last.epochProgress > 0 else { return 0 }
        return (Double(last.examplesSeen) / last.epochProgress).rounded()
    }
}

/// `log.jsonl` while a run goes, so `tail -f` follows it: `start` writes the records so far (none
/// for a fresh run, the resume state's for a resumed one) and each record is then appended with
/// one write as it is made. The stage writes the whole log once more, atomically, at the end: the
/// same lines, so the final file is what it would be without the streaming.
public final class TrainingLogFile {
    public let url: URL
    private var handle: FileHandle?

    public init(url: URL) { self.url = url }

    deinit { try? handle?.close() }

    public func start(with records: [LogRecord]) throws {
        try close()
        try AtomicFile.write(LogRecord.jsonLines(records), to: url)
        do {
            let h = try FileHandle(forWritingTo: url)
            try h.seekToEnd()
            handle = h
        } catch {
            throw PipelineError("cannot append to the training log: \(error.localizedDescription)", location: url.path)
        }
    }

    public func append(_ record: LogRecord) throws {
        guard let handle else { return }
        do { try handle.write(contentsOf: Data((record.jsonLine() + "\n").utf8)) } catch {
            throw PipelineError("cannot append to the training log: \(error.localizedDescription)", location: url.path)
        }
    }

    public func close() throws {
        try handle?.close()
        handle = nil
    }
}

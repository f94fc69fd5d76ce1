import Classification
import Foundation

/// Classification requests batched into shared forward passes. A worker thread takes every
/// waiting request whose texts fit in `maxBatch` rows (at least one request), runs them through
/// `TextClassifier.predict` together and answers each with its own rows.
final class ClassifyService: @unchecked Sendable {
    struct Job {
        var texts: [[Int]]
        var reply: (Result<[TextClassifier.Prediction], Error>) -> Void
    }

    let classifier: TextClassifier
    let maxBatch: Int
    let metrics: ServerMetrics
    let queue: WorkQueue<Job>
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    init(classifier: TextClassifier, maxBatch: Int, queueLimit: Int, metrics: ServerMetrics) {
        self.classifier = classifier
        self.maxBatch = maxBatch
        self.metrics = metrics
        queue = WorkQueue(limit: queueLimit)
        let thread = Thread { [unowned self] in self.work() }
        thread.name = "classify"
        self.thread = thread
        thread.start()
    }

    /// The predictions of `texts` (already encoded), in order. Throws `APIError.busy` when the
    /// queue is full.
    func classify(_ texts: [[Int]]) async throws -> [TextClassifier.Prediction] {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = queue.submit(Job(texts: texts) { continuation.resume(with: $0) })
            if !accepted { continuation.resume(throwing: APIError.busy(queueLimit: queue.limit)) }
        }
    }

    var queueDepth: Int { queue.depth }

    private func work() {
        while let jobs = queue.take(maxWeight: maxBatch, weight: { $0.texts.count }) {
            let all = jobs.flatMap(\.texts)
            metrics.recordBatch(rows: all.count)
            do {
                let predictions = try classifier.predict(all)
                var first = 0
                for job in jobs {
                    job.reply(.success(Array(predictions[first..<(first + job.texts.count)])))
                    first += job.texts.count
                }
            } catch {
                for job in jobs { job.reply(.failure(error)) }
            }
        }
        finished.signal()
    }

    /// Answers what is queued, then stops the worker.
    func shutdown() {
        queue.close()
        finished.wait()
    }
}

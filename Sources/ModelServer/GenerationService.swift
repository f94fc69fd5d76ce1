import ArtifactKit
import Foundation
import GPT2

/// What a generating request hears from the worker.
enum GenerationEvent: Sendable {
    case token(Int32)
    case finished(GenerationSession.FinishReason)
    case failed(String)
}

/// Chat and completion requests batched into shared decoding steps: a worker thread keeps one
/// `GenerationSession` with `slots` rows, moves waiting requests into free rows before each step
/// (their prompts are prefilled in the same step as the others' next tokens), and sends every
/// request its tokens as they come. A request whose client went away leaves its row at the next
/// step; the others do not notice.
final class GenerationService: @unchecked Sendable {
    struct Job {
        var prompt: [Int32]
        var options: GenerationOptions
        var events: AsyncStream<GenerationEvent>.Continuation
        var cancelled: CancelFlag
    }

    let session: GenerationSession
    let metrics: ServerMetrics
    let queue: WorkQueue<Job>
    private var running: [Int: Job] = [:]   // by slot; touched by the worker thread only
    /// Seconds the worker waits before each step: 0, except in tests that need a generation to
    /// outlast a client (a tiny model finishes before a hang-up is noticed).
    var stepDelay: Double {
        get { delay.value }
        set { delay.set(newValue) }
    }
    private let delay = LockedDouble()
    private let finished = DispatchSemaphore(value: 0)

    init(session: GenerationSession, queueLimit: Int, metrics: ServerMetrics) {
        self.session = session
        self.metrics = metrics
        queue = WorkQueue(limit: queueLimit)
        let thread = Thread { [unowned self] in self.work() }
        thread.name = "generate"
        thread.start()
    }

    /// Starts generating; the stream ends after `.finished` or `.failed`. Throws `APIError.busy`
    /// when the queue is full. Setting the returned flag (or cancelling the task that reads the
    /// stream) frees the request's row at the next step.
    func generate(prompt: [Int32], options: GenerationOptions) throws -> (AsyncStream<GenerationEvent>, CancelFlag) {
        let cancelled = CancelFlag()
        let (stream, continuation) = AsyncStream<GenerationEvent>.makeStream()
        continuation.onTermination = { _ in cancelled.set() }
        guard queue.submit(Job(prompt: prompt, options: options, events: continuation, cancelled: cancelled)) else {
            continuation.finish()
            throw APIError.busy(queueLimit: queue.limit)
        }
        return (stream, cancelled)
    }

    var queueDepth: Int { queue.depth }

    private func work() {
        while admitWaiting() {
            for (slot, job) in running where job.cancelled.isSet {
                session.remove(slot)
                running[slot] = nil
                metrics.recordCancelledGeneration()
            }
            if stepDelay > 0 { Thread.sleep(forTimeInterval: stepDelay) }
            let events = session.step()
            metrics.recordBatch(rows: events.count)
            for event in events {
                guard let job = running[event.slot] else { continue }
                if let token = event.token {
                    job.events.yield(.token(token))
                    metrics.recordGeneratedTokens(1)
                }
                if let reason = event.finished {
                    job.events.yield(.finished(reason))
                    job.events.finish()
                    running[event.slot] = nil
                }
            }
        }
        finished.signal()
    }

    /// Moves waiting requests into free rows: blocks while nothing runs and nothing waits.
    /// False once the queue is closed and every request is done.
    private func admitWaiting() -> Bool {
        let free = session.slots - running.count
        guard free > 0 else { return true }
        guard let jobs = queue.take(maxWeight: free, weight: { _ in 1 }, wait: running.isEmpty) else { return !running.isEmpty }
        for job in jobs where !job.cancelled.isSet {
            do {
                running[try session.add(prompt: job.prompt, options: job.options)] = job
            } catch let e as PipelineError {
                job.events.yield(.failed(e.message))
                job.events.finish()
            } catch {
                job.events.yield(.failed("\(error)"))
                job.events.finish()
            }
        }
        return true
    }

    /// Finishes the running and queued requests, then stops the worker.
    func shutdown() {
        queue.close()
        finished.wait()
    }
}

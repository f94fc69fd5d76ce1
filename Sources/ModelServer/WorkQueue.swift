import Foundation

/// A bounded first-in first-out queue between the request handlers (any thread) and one worker
/// thread that runs the model. `submit` refuses a job when `limit` jobs already wait (the server
/// answers 503); `close` lets the worker finish what is queued and then stop.
final class WorkQueue<Job>: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var closed = false
    private var paused = false
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Queues a job; false when the queue is full or closed.
    func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, jobs.count < limit else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Jobs waiting now.
    var depth: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count
    }

    /// The first waiting job and those after it while their weights add up to at most `maxWeight`
    /// (the first is always taken). Blocks while the queue is empty, unless `wait` is false;
    /// nil once the queue is closed and empty.
    func take(maxWeight: Int, weight: (Job) -> Int, wait: Bool = true) -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty || paused {
            if closed && jobs.isEmpty { return nil }
            guard wait else { return [] }
            condition.wait()
        }
        var taken = [jobs.removeFirst()]
        var total = weight(taken[0])
        while let next = jobs.first, total + weight(next) <= maxWeight {
            total += weight(next)
            taken.append(jobs.removeFirst())
        }
        return taken
    }

    /// While paused the worker takes nothing (tests fill the queue this way).
    func setPaused(_ value: Bool) {
        condition.lock()
        paused = value
        condition.broadcast()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        paused = false
        condition.broadcast()
        condition.unlock()
    }
}

/// A flag one thread sets and another reads (a client went away).
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// A number one thread sets and another reads.
final class LockedDouble: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0.0

    var value: Double {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }

    func set(_ value: Double) {
        lock.lock()
        stored = value
        lock.unlock()
    }
}

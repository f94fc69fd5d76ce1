import Foundation

/// Counters and a latency histogram per route, shown by GET /metrics in Prometheus' text format
/// (version 0.0.4): `serve_requests_total{route,method,status}`, `serve_request_duration_seconds`
/// (time from the request to its response head; for a stream, to its first byte), and the
/// batching counters (`serve_batches_total`, `serve_batch_rows_total`: rows per forward pass =
/// rows / batches), `serve_generated_tokens_total`, `serve_cancelled_generations_total`,
/// `serve_queue_depth`.
public final class ServerMetrics: @unchecked Sendable {
    /// Upper bounds of the latency buckets, in seconds (`+Inf` is added).
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    private struct Count: Hashable { var route, method: String; var status: Int }
    private struct Histogram {
        var counts = [Int](repeating: 0, count: ServerMetrics.buckets.count)
        var total = 0
        var sum = 0.0
    }

    private let lock = NSLock()
    private var requests: [Count: Int] = [:]
    private var latency: [String: Histogram] = [:]
    private var batches = 0, batchRows = 0, generatedTokens = 0, cancelledGenerations = 0

    public init() {}

    func record(route: String, method: String, status: Int, seconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        requests[Count(route: route, method: method, status: status), default: 0] += 1
        var h = latency[route] ?? Histogram()
        for (i, bound) in ServerMetrics.buckets.enumerated() where seconds <= bound { h.counts[i] += 1 }
        h.total += 1
        h.sum += seconds
        latency[route] = h
    }

    func recordBatch(rows: Int) {
        lock.lock()
        batches += 1
        batchRows += rows
        lock.unlock()
    }

    func recordGeneratedTokens(_ n: Int) {
        lock.lock()
        generatedTokens += n
        lock.unlock()
    }

    func recordCancelledGeneration() {
        lock.lock()
        cancelledGenerations += 1
        lock.unlock()
    }

    /// The exposition text.
    func text(queueDepth: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = "# HELP serve_requests_total Requests answered, by route, method and status.\n# TYPE serve_requests_total counter\n"
        for (key, n) in requests.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            out += "serve_requests_total{route=\"\(key.route)\",method=\"\(key.method)\",status=\"\(key.status)\"} \(n)\n"
        }
        out += "# HELP serve_request_duration_seconds Time from a request to its response head.\n# TYPE serve_request_duration_seconds histogram\n"
        for (route, h) in latency.sorted(by: { $0.key < $1.key }) {
            for (i, bound) in ServerMetrics.buckets.enumerated() {
                out += "serve_request_duration_seconds_bucket{route=\"\(route)\",le=\"\(bound)\"} \(h.counts[i])\n"
            }
            out += "serve_request_duration_seconds_bucket{route=\"\(route)\",le=\"+Inf\"} \(h.total)\n"
            out += "serve_request_duration_seconds_sum{route=\"\(route)\"} \(h.sum)\n"
            out += "serve_request_duration_seconds_count{route=\"\(route)\"} \(h.total)\n"
        }
        for (name, kind, help, value) in [
            ("serve_batches_total", "counter", "Forward passes (classify) or decoding steps (generation) run.", batches),
            ("serve_batch_rows_total", "counter", "Rows in those passes: texts classified, or requests in a decoding step.", batchRows),
            ("serve_generated_tokens_total", "counter", "Tokens generated.", generatedTokens),
            ("serve_cancelled_generations_total", "counter", "Generations stopped because their client went away.", cancelledGenerations),
            ("serve_queue_depth", "gauge", "Requests waiting for the model.", queueDepth),
        ] {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(kind)\n\(name) \(value)\n"
        }
        return out
    }
}

import ArgumentParser
import Foundation
import GPT2Tokenizer

/// Times `GPT2BPETokenizer` on a JSON-lines corpus; prints one JSON object for
/// tools/bench/tokenizer.sh, which times tiktoken on the same corpus in the same run.
@main
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure GPT-2 tokenizer throughput (tokens/s) on a JSON-lines corpus.")

    @Option(help: "Directory holding encoder.json and vocab.bpe.")
    var vocab: String

    @Option(help: "JSON lines, one JSON string (a document) per line.")
    var corpus: String

    @Option(help: "Timed runs per measurement; each starts from a fresh tokenizer (empty cache).")
    var runs = 5

    @Option(help: "Threads for the batch measurement.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let vocabulary = URL(fileURLWithPath: vocab)
        let texts = try JSONLinesTokenization.parseLines(Data(contentsOf: URL(fileURLWithPath: corpus)), source: corpus)
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }

        var loadSeconds = [Double]()
        var singleSeconds = [Double]()
        var warmSeconds = [Double]()
        var batchSeconds = [Double]()
        var tokenCount = 0
        var checksum: UInt64 = 0
        for _ in 0..<runs {
            var start = DispatchTime.now()
            let tokenizer = try GPT2BPETokenizer(directory: vocabulary)
            loadSeconds.append(seconds(since: start))

            // Single thread, cache starting empty: the fair comparison with tiktoken's encode_ordinary.
            start = DispatchTime.now()
            var count = 0
            var sum: UInt64 = 0
            for text in texts {
                let ids = tokenizer.encodeOrdinary(text)
                count += ids.count
                for id in ids { sum = sum &* 31 &+ UInt64(id) }
            }
            singleSeconds.append(seconds(since: start))
            tokenCount = count
            checksum = sum

            // The same texts again on the now warm cache.
            start = DispatchTime.now()
            for text in texts { count &+= tokenizer.encodeOrdinary(text).count }
            warmSeconds.append(seconds(since: start))

            let fresh = try GPT2BPETokenizer(directory: vocabulary)
            start = DispatchTime.now()
            let batch = fresh.encodeOrdinaryBatch(texts, threads: threads)
            batchSeconds.append(seconds(since: start))
            guard batch.reduce(0, { $0 + $1.count }) == tokenCount else { throw ValidationError("batch and single-thread token counts differ") }
        }
        let report: [String: Any] = [
            "documents": texts.count, "bytes": bytes, "tokens": tokenCount, "checksum": String(checksum),
            "runs": runs, "threads": threads,
            "load_seconds": loadSeconds, "single_seconds": singleSeconds,
            "warm_seconds": warmSeconds, "batch_seconds": batchSeconds,
        ]
        let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    private func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}

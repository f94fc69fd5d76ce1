import Foundation
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// Not a timed test: a benchmark that runs only when tools/reference/weights_bench.py sets
/// LLMFT_WEIGHTS_BENCH_FILE to a GPT-2-small-sized model.safetensors (written by transformers).
/// It prints "BENCH <name> <median seconds>" lines that the script compares with Python's.
final class WeightsBenchmarkTests: WeightsTestCase {
    func median(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    func testBenchmarkGPT2SmallWeights() throws {
        guard let path = ProcessInfo.processInfo.environment["LLMFT_WEIGHTS_BENCH_FILE"] else {
            throw XCTSkip("benchmark: set LLMFT_WEIGHTS_BENCH_FILE (tools/reference/weights_bench.py does)")
        }
        let url = URL(fileURLWithPath: path)
        let config = try inferConfig(fromSafetensors: url)
        XCTAssertEqual(config, .small)
        let layout = ParameterLayout(config: config, head: .languageModel)
        var params: [Float] = []
        let load = try median(5) { params = try loadHFWeights(from: url, config: config, head: .languageModel) }
        XCTAssertEqual(params.count, layout.totalCount)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("llmft-bench-\(UUID().uuidString.prefix(8)).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let save = try median(3) { try saveCheckpoint(params: params, layout: layout, metadata: [:], to: out) }
        var back: [Float] = []
        let reload = try median(3) { back = try loadCheckpoint(from: out).params }
        XCTAssertEqual(back, params)
        var random: [Float] = []
        let initTime = median(3) { random = randomWeights(layout: layout, seed: 1) }
        XCTAssertEqual(random.count, layout.totalCount)
        print(String(format: "BENCH load_hf_safetensors %.4f", load))
        print(String(format: "BENCH save_checkpoint %.4f", save))
        print(String(format: "BENCH load_checkpoint %.4f", reload))
        print(String(format: "BENCH random_init %.4f", initTime))
    }
}

import Foundation
import XCTest
@testable import GPT2
@testable import GPT2Weights

final class WeightsCheckpointTests: WeightsTestCase {
    let callerMeta = [CheckpointFormat.CallerKey.baseModel: "random seed 5",
                      CheckpointFormat.CallerKey.trainable: "last-block+final-norm+head",
                      "epochs": "5"]

    func testSaveThenLoadIsBitExactWithMetadata() throws {
        let layout = ParameterLayout(config: tinyConfig, head: .classifier(numClasses: 2))
        var params = randomWeights(layout: layout, seed: 5)
        params[3] = -0.0
        params[4] = .leastNonzeroMagnitude
        let url = dir.appendingPathComponent("ckpt/model.safetensors")
        try saveCheckpoint(params: params, layout: layout, metadata: callerMeta, to: url)
        let (l2, p2, meta) = try loadCheckpoint(from: url)
        XCTAssertEqual(l2, layout)
        XCTAssertEqual(p2.map(\.bitPattern), params.map(\.bitPattern))
        XCTAssertEqual(meta["format"], "llm-finetune-checkpoint")
        XCTAssertEqual(meta["format_version"], "1")
        XCTAssertEqual(meta["base_model"], "random seed 5")
        XCTAssertEqual(meta["trainable"], "last-block+final-norm+head")
        XCTAssertEqual(meta["epochs"], "5")
        XCTAssertEqual(meta["param_count"], String(layout.totalCount))
        XCTAssertEqual(meta["params_sha256"], parametersSHA256(params))
        XCTAssertEqual(meta["head"], #"{"classifier":{"numClasses":2}}"#)
        // HF names and shapes, in layout order: the body loads back through the HF loader too.
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.tensorNames, layout.tensors.map(\.name))
        XCTAssertEqual(file.info("h.0.attn.c_attn.weight")?.shape, [64, 192])
        XCTAssertEqual(file.info("out_head.weight")?.shape, [2, 64])
        let viaHF = try loadHFWeights(from: url, config: tinyConfig, head: .classifier(numClasses: 2))
        XCTAssertEqual(viaHF, params)
        // The LM checkpoint round-trips too.
        let lmLayout = ParameterLayout(config: tinyConfig, head: .languageModel)
        let lm = randomWeights(layout: lmLayout, seed: 6)
        try saveCheckpoint(params: lm, layout: lmLayout, metadata: [:], to: url)
        let back = try loadCheckpoint(from: url)
        XCTAssertEqual(back.layout.head, .languageModel)
        XCTAssertEqual(back.params, lm)
    }

    /// The committed checkpoint Tests/Fixtures/weights/swift-checkpoint.safetensors was written by
    /// this code and checked by `make_weights_fixture.py --check` (safetensors + transformers).
    /// Writing the same parameters again must give the same bytes, so the check still applies.
    /// LLMFT_WRITE_FIXTURES=1 rewrites it.
    func testCommittedCheckpointIsWhatThisCodeWrites() throws {
        let layout = ParameterLayout(config: tinyConfig, head: .classifier(numClasses: 2))
        let params = randomWeights(layout: layout, seed: 2024)
        let committed = weightsFixtures.appendingPathComponent("swift-checkpoint.safetensors")
        if ProcessInfo.processInfo.environment["LLMFT_WRITE_FIXTURES"] == "1" {
            try saveCheckpoint(params: params, layout: layout, metadata: callerMeta, to: committed)
        }
        let fresh = dir.appendingPathComponent("fresh.safetensors")
        try saveCheckpoint(params: params, layout: layout, metadata: callerMeta, to: fresh)
        XCTAssertEqual(try Data(contentsOf: fresh), try Data(contentsOf: committed))
        XCTAssertEqual(try loadCheckpoint(from: committed).params, params)
    }

    func testBadCheckpointsAreRejectedWithClearMessages() throws {
        let layout = ParameterLayout(config: tinyConfig, head: .classifier(numClasses: 2))
        let params = randomWeights(layout: layout, seed: 5)
        let url = dir.appendingPathComponent("c.safetensors")

        assertMessage(errorMessage { try saveCheckpoint(params: Array(params.dropLast()), layout: layout, metadata: [:], to: url) },
                      contains: ["\(params.count - 1) parameters", "\(params.count)"])
        assertMessage(errorMessage { try saveCheckpoint(params: params, layout: layout, metadata: ["config": "x"], to: url) },
                      contains: ["\"config\"", "reserved"])
        var nan = params
        nan[layout.spec(named: "h.1.mlp.c_fc.bias")!.offset] = .nan
        assertMessage(errorMessage { try saveCheckpoint(params: nan, layout: layout, metadata: [:], to: url) },
                      contains: ["non-finite", "h.1.mlp.c_fc.bias"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))

        // Pretrained HF weights are not a checkpoint.
        assertMessage(errorMessage { _ = try loadCheckpoint(from: weightsFixtures.appendingPathComponent("tiny-gpt2/model.safetensors")) },
                      contains: ["not an llm-finetune checkpoint", "\"pt\"", "loadHFWeights"])

        try saveCheckpoint(params: params, layout: layout, metadata: [:], to: url)
        let good = try rawTensors(of: url)
        let meta = try SafetensorsFile(contentsOf: url).metadata
        func rewrite(_ tensors: [RawTensor], _ metadata: [String: String]) throws -> String {
            // Metadata values are JSON strings; escape the quotes of config/head.
            let escaped = metadata.mapValues { $0.replacingOccurrences(of: "\"", with: "\\\"") }
            try writeRaw(tensors, metadata: escaped, to: url)
            return errorMessage { _ = try loadCheckpoint(from: url) }
        }
        var changed = good
        let i = changed.firstIndex { $0.name == "ln_f.weight" }!
        changed[i].bytes[0] ^= 1
        assertMessage(try rewrite(changed, meta), contains: ["do not match their recorded hash"])
        assertMessage(try rewrite(good.filter { $0.name != "out_head.bias" }, meta), contains: ["lacks tensor \"out_head.bias\""])
        assertMessage(try rewrite(good + [RawTensor(name: "extra", dtype: "F32", shape: [1], bytes: f32Bytes([0]))], meta),
                      contains: ["unexpected tensor \"extra\""])
        var newer = meta
        newer["format_version"] = "2"
        assertMessage(try rewrite(good, newer), contains: ["format_version 2"])
        var badConfig = meta
        badConfig["config"] = "{}"
        assertMessage(try rewrite(good, badConfig), contains: ["\"config\"", "malformed"])
        var otherHead = meta
        otherHead["head"] = #"{"classifier":{"numClasses":3}}"#
        assertMessage(try rewrite(good, otherHead), contains: ["\"out_head.weight\"", "shape [2, 64], expected [3, 64]"])
    }
}

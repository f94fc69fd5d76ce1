import ArtifactKit
import Foundation
import TestSupport
import XCTest
@testable import GPT2
@testable import GPT2Weights

/// LoRA (appendix E): parity with the book's PyTorch LoRA model on the golden files written by
/// tools/reference/lora_parity.py, plus the properties the fixture cannot show (initialisation,
/// parameter count, generation, merging, checkpoints, errors).
final class LoRATests: XCTestCase {
    struct Case {
        let model: GPT2Model
        let golden: SafetensorsFile
        let batch: Int
        let seqLen: Int
        let tokens: [Int32]
        let initialAdapters: [Float]
    }

    func loadCase(_ name: String) throws -> Case {
        let f = try ParityFixture(folder: "lora-parity", name: name)
        let weights = f.weights
        let rank = try XCTUnwrap(weights.metadata["lora_rank"].flatMap(Int.init))
        let alpha = try XCTUnwrap(weights.metadata["lora_alpha"].flatMap(Float.init))
        let loraLayout = try LoRALayout(layout: f.layout, rank: rank)
        var values = [Float](repeating: 0, count: loraLayout.totalCount)
        for t in loraLayout.tensors {
            XCTAssertEqual(weights.info(t.name)?.shape, t.shape, t.name)
            values.replaceSubrange(t.offset..<(t.offset + t.shape[0] * t.shape[1]), with: try weights.floats(t.name))
        }
        let model = try GPT2Model(layout: f.layout, params: f.params)
        try model.attachLoRA(LoRAWeights(settings: LoRASettings(rank: rank, alpha: alpha), layout: loraLayout, values: values))
        return Case(model: model, golden: f.golden, batch: f.batch, seqLen: f.seqLen, tokens: f.tokens,
                    initialAdapters: values)
    }

    func adapterTensor(_ lora: LoRAAdapters, _ values: [Float], _ name: String) throws -> [Float] {
        let t = try XCTUnwrap(lora.layout.tensors.first { $0.name == name }, name)
        return Array(values[t.offset..<(t.offset + t.shape[0] * t.shape[1])])
    }

    func checkCase(_ c: Case, objective: Objective, logits: [Float], finals: [String]) throws {
        let lora = try XCTUnwrap(c.model.loraAdapters)
        compareParity("lora parity", logits, try c.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")
        let loss = try c.model.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, objective: objective,
                                               trainable: .loraAdapters)
        let expectedLoss = try c.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        let grads = lora.gradients
        for t in lora.layout.tensors {
            compareParity("lora parity", try adapterTensor(lora, grads, t.name), try c.golden.floats("grad." + t.name), rel: 1e-3, absMax: 1e-4,
                    "grad \(t.name)")
        }
        // The base weights are frozen: no gradient buffer is ever allocated for them.
        XCTAssertNil(c.model.gradBuffer)

        // 5 AdamW steps over the adapters only (lr 1e-3, weight decay 0.1, as the script).
        let baseBefore = c.model.parameters
        let opt = AdamW(parameterCount: lora.count, learningRate: 1e-3, weightDecay: 0.1)
        var losses: [Float] = []
        for _ in 0..<5 {
            c.model.zeroGradients()
            losses.append(try c.model.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, objective: objective,
                                                      trainable: .loraAdapters))
            try opt.update(c.model, trainable: .loraAdapters)
        }
        let expected = try c.golden.floats("trajectory")
        XCTAssertEqual(expected.count, 5)
        for (i, (a, e)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-4 * max(abs(e), 1), "loss at step \(i + 1): \(a) vs torch \(e)")
        }
        for name in finals {
            compareParity("lora parity", try adapterTensor(lora, lora.values, name), try c.golden.floats("after." + name), rel: 1e-4, absMax: 1e-4,
                    "\(name) after 5 steps")
        }
        XCTAssertEqual(c.model.parameters, baseBefore, "the base weights changed")
        XCTAssertNil(c.model.gradBuffer)
    }

    func testClassifierMatchesBookLoRA() throws {
        let c = try loadCase("cls")
        let labels = try c.golden.int64s("labels").map { Int32($0) }
        let logits = try c.model.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last)
        try checkCase(c, objective: .classification(labels: labels, position: .last), logits: logits,
                      finals: ["out_head.lora_B", "h.0.attn.c_attn.k.lora_A"])
    }

    func testLanguageModelMatchesBookLoRA() throws {
        let c = try loadCase("lm")
        let targets = try c.golden.int64s("targets").map { Int32($0) }
        let logits = try c.model.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen)
        try checkCase(c, objective: .languageModel(targets: targets), logits: logits,
                      finals: ["lm_head.lora_B", "h.1.mlp.c_fc.lora_A"])
    }

    /// The KV-cached generation applies the adapters exactly like the full forward pass.
    func testCachedGenerationAppliesAdapters() throws {
        let c = try loadCase("lm")
        let prompts: [[Int32]] = [Array(c.tokens[0..<5]), Array(c.tokens[12..<15])]
        let options = GenerationOptions(maxNewTokens: 9, temperature: 0)
        let cached = try c.model.generate(prompts: prompts, options: options)
        let uncached = try c.model.generateUncached(prompts: prompts, options: options)
        XCTAssertEqual(cached, uncached)
        // The adapters matter: without them the (greedy) continuation differs.
        let plain = try GPT2Model(layout: c.model.layout, params: c.model.parameters)
        XCTAssertNotEqual(try plain.generate(prompts: prompts, options: options), cached)
    }

    /// W' = W + alpha A B in the weights computes the same classifier as the adapters at run time.
    func testMergedWeightsEqualAdapters() throws {
        let c = try loadCase("cls")
        let lora = try XCTUnwrap(c.model.loraAdapters)
        let merged = try lora.weights.merged(into: c.model.parameters, layout: c.model.layout)
        let plain = try GPT2Model(layout: c.model.layout, params: merged)
        let a = try c.model.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last)
        let b = try plain.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last)
        compareParity("lora parity", b, a, rel: 1e-5, absMax: 1e-5, "merged vs adapters")
        // The tied language-model head cannot be merged into wte.
        let lm = try loadCase("lm")
        XCTAssertThrowsError(try lm.model.loraAdapters!.weights.merged(into: lm.model.parameters, layout: lm.model.layout))
    }

    /// The book's count for gpt2-small with rank 16 and a 2-class head (appendix E): 2,666,528.
    func testTrainableParameterCountMatchesBook() throws {
        let layout = ParameterLayout(config: try GPT2Config.named("gpt2-small"), head: .classifier(numClasses: 2))
        XCTAssertEqual(try LoRALayout(layout: layout, rank: 16).totalCount, 2_666_528)
        XCTAssertEqual(try LoRALayout(layout: layout, rank: 16).adapters.count, 12 * 6 + 1)
    }

    /// A ~ U(-1/sqrt(r), 1/sqrt(r)) (kaiming_uniform_, a = sqrt(5), fan-in r), B = 0: a fresh
    /// adapter leaves the model's outputs unchanged.
    func testInitialisationIsTheBooks() throws {
        let c = try loadCase("cls")
        let layout = c.model.layout
        let fresh = try LoRAWeights.initial(for: layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123)
        var maxA: Float = 0
        for s in fresh.layout.adapters {
            for i in s.aOffset..<s.bOffset { maxA = max(maxA, abs(fresh.values[i])) }
            for i in s.bOffset..<(s.aOffset + s.count) { XCTAssertEqual(fresh.values[i], 0) }
        }
        XCTAssertLessThanOrEqual(maxA, 0.5)
        XCTAssertGreaterThan(maxA, 0.45)
        XCTAssertEqual(fresh, try LoRAWeights.initial(for: layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123))
        let plain = try GPT2Model(layout: layout, params: c.model.parameters)
        let before = try plain.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last)
        try plain.attachLoRA(fresh)
        XCTAssertEqual(try plain.logits(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, at: .last), before)
    }

    func testBadRankIsAClearError() throws {
        let layout = ParameterLayout(config: try GPT2Config.named("gpt2-small"), head: .languageModel)
        for rank in [0, -3] {
            XCTAssertThrowsError(try LoRALayout(layout: layout, rank: rank)) { error in
                XCTAssertTrue("\(error)".contains("LoRA rank must be at least 1, got \(rank)"), "\(error)")
            }
            XCTAssertThrowsError(try LoRASettings(rank: rank, alpha: 16).validate(rankLocation: "train.lora_rank")) { error in
                XCTAssertTrue("\(error)".contains("train.lora_rank"), "\(error)")
            }
        }
        XCTAssertThrowsError(try LoRASettings(rank: 4, alpha: .nan).validate())
    }

    /// Training the adapters needs them attached; AdamW over the adapters refuses base tensors.
    func testAdapterTrainingNeedsAdapters() throws {
        let c = try loadCase("lm")
        let plain = try GPT2Model(layout: c.model.layout, params: c.model.parameters)
        let targets = try c.golden.int64s("targets").map { Int32($0) }
        XCTAssertThrowsError(try plain.forwardBackward(tokens: c.tokens, batch: c.batch, seqLen: c.seqLen,
                                                       objective: .languageModel(targets: targets), trainable: .loraAdapters))
    }

    /// A checkpoint stores the base weights unmerged plus the adapters (with rank, alpha and a hash);
    /// the plain reader refuses it, the LoRA reader returns both.
    func testCheckpointRoundTrip() throws {
        let c = try loadCase("cls")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let lora = try XCTUnwrap(c.model.loraAdapters).weights
        try saveCheckpoint(params: c.model.parameters, layout: c.model.layout, metadata: ["base_model": "test"], to: url, lora: lora)
        let loaded = try loadCheckpointWithLoRA(from: url)
        XCTAssertEqual(loaded.params, c.model.parameters)
        XCTAssertEqual(loaded.lora, lora)
        XCTAssertEqual(loaded.metadata["lora_rank"], "4")
        XCTAssertEqual(loaded.metadata["lora_alpha"], "2.0")
        XCTAssertThrowsError(try loadCheckpoint(from: url)) { error in
            XCTAssertTrue("\(error)".contains("LoRA adapters"), "\(error)")
        }
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.info("h.1.attn.c_attn.v.lora_A")?.shape, [32, 4])
        XCTAssertEqual(file.info("out_head.lora_B")?.shape, [4, 2])
    }
}

import ArtifactKit
import Foundation
import GPT2TestSupport
import TestSupport
import XCTest
@testable import GPT2
@testable import GPT2Weights

/// LoRA (appendix E) in the language model: parity with the book's PyTorch LoRA model on the
/// golden files written by tools/reference/lora_parity.py, plus the properties the fixture cannot
/// show (initialisation, parameter count, generation, merging, checkpoints, errors). The
/// classifier case of the same script runs through the production classifier path:
/// ClassificationTests/ClassifierParityTests.
final class LoRATests: XCTestCase {
    /// The fixture and a model over its base weights with its adapters attached.
    func loadCase(_ name: String) throws -> (fixture: ParityFixture, model: GPT2Model) {
        let f = try ParityFixture(folder: "lora-parity", name: name)
        let model = try f.model()
        try model.attachLoRA(try f.loraWeights())
        return (f, model)
    }

    func testLanguageModelMatchesBookLoRA() throws {
        let (f, model) = try loadCase("lm")
        let lora = try XCTUnwrap(model.loraAdapters)
        let objective = Objective.languageModel(targets: try f.golden.int64s("targets").map { Int32($0) })
        let logits = try model.logits(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen)
        compareParity("lora parity", logits, try f.golden.floats("logits"), rel: 1e-4, absMax: 1e-4, "logits")
        let loss = try model.forwardBackward(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen, objective: objective,
                                             trainable: .loraAdapters)
        let expectedLoss = try f.golden.floats("loss")[0]
        XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss))
        let grads = lora.gradients
        for t in lora.layout.tensors {
            compareParity("lora parity", try ParityFixture.adapterTensor(lora.layout, grads, t.name),
                          try f.golden.floats("grad." + t.name), rel: 1e-3, absMax: 1e-4, "grad \(t.name)")
        }
        // The base weights are frozen: no gradient buffer is ever allocated for them.
        XCTAssertNil(model.gradBuffer)

        // 5 AdamW steps over the adapters only (lr 1e-3, weight decay 0.1, as the script).
        let baseBefore = model.parameters
        let opt = AdamW(parameterCount: lora.count, learningRate: 1e-3, weightDecay: 0.1)
        var losses: [Float] = []
        for _ in 0..<5 {
            model.zeroGradients()
            losses.append(try model.forwardBackward(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen, objective: objective,
                                                    trainable: .loraAdapters))
            try opt.update(model, trainable: .loraAdapters)
        }
        let expected = try f.golden.floats("trajectory")
        XCTAssertEqual(expected.count, 5)
        for (i, (a, e)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-4 * max(abs(e), 1), "loss at step \(i + 1): \(a) vs torch \(e)")
        }
        for name in ["lm_head.lora_B", "h.1.mlp.c_fc.lora_A"] {
            compareParity("lora parity", try ParityFixture.adapterTensor(lora.layout, lora.values, name),
                          try f.golden.floats("after." + name), rel: 1e-4, absMax: 1e-4, "\(name) after 5 steps")
        }
        XCTAssertEqual(model.parameters, baseBefore, "the base weights changed")
        XCTAssertNil(model.gradBuffer)
    }

    /// The KV-cached generation applies the adapters exactly like the full forward pass.
    func testCachedGenerationAppliesAdapters() throws {
        let c = try loadCase("lm")
        let prompts: [[Int32]] = [Array(c.fixture.tokens[0..<5]), Array(c.fixture.tokens[12..<15])]
        let options = GenerationOptions(maxNewTokens: 9, temperature: 0)
        let cached = try c.model.generate(prompts: prompts, options: options)
        let uncached = try c.model.generateUncached(prompts: prompts, options: options)
        XCTAssertEqual(cached, uncached)
        // The adapters matter: without them the (greedy) continuation differs.
        let plain = try GPT2Model(layout: c.model.layout, params: c.model.parameters)
        XCTAssertNotEqual(try plain.generate(prompts: prompts, options: options), cached)
    }

    /// The tied language-model head's adapter cannot be merged into wte (the classifier's merge:
    /// ClassificationTests/ClassifierParityTests).
    func testTiedHeadAdaptersCannotBeMerged() throws {
        let lm = try loadCase("lm")
        XCTAssertThrowsError(try lm.model.loraAdapters!.weights.merged(into: lm.model.parameters, layout: lm.model.layout)) { error in
            XCTAssertTrue("\(error)".contains("lm_head"), "\(error)")
        }
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
        let layout = try ParityFixture(folder: "lora-parity", name: "cls").layout
        let fresh = try LoRAWeights.initial(for: layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123)
        var maxA: Float = 0
        for s in fresh.layout.adapters {
            for i in s.aOffset..<s.bOffset { maxA = max(maxA, abs(fresh.values[i])) }
            for i in s.bOffset..<(s.aOffset + s.count) { XCTAssertEqual(fresh.values[i], 0) }
        }
        XCTAssertLessThanOrEqual(maxA, 0.5)
        XCTAssertGreaterThan(maxA, 0.45)
        XCTAssertEqual(fresh, try LoRAWeights.initial(for: layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123))
        // Outputs unchanged, bit for bit: the language model here, the classifier in ClassifierParityTests.
        let lm = try ParityFixture(folder: "lora-parity", name: "lm")
        let plain = try lm.model()
        let before = try plain.logits(tokens: lm.tokens, batch: lm.batch, seqLen: lm.seqLen)
        try plain.attachLoRA(try LoRAWeights.initial(for: lm.layout, settings: LoRASettings(rank: 4, alpha: 2), seed: 123))
        XCTAssertEqual(try plain.logits(tokens: lm.tokens, batch: lm.batch, seqLen: lm.seqLen), before)
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
        let f = try ParityFixture(folder: "lora-parity", name: "lm")
        let plain = try f.model()
        let targets = try f.golden.int64s("targets").map { Int32($0) }
        XCTAssertThrowsError(try plain.forwardBackward(tokens: f.tokens, batch: f.batch, seqLen: f.seqLen,
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

import Foundation
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights
import TestSupport

/// Reads the genuine index of OpenAI's GPT-2 124M TensorFlow checkpoint (shared assets; its data
/// file is truncated to 3 MiB, of which the first tensor is complete).
final class WeightsTFCheckpointTests: WeightsTestCase {
    func layoutDir() throws -> URL {
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("shared assets not found (../shared/assets or $LLMFT_ASSETS): the genuine GPT-2 TF index is needed")
        }
        return assets.appendingPathComponent("gpt2-124M-layout")
    }

    func testGenuineIndexListsAll148TensorsWithShapes() throws {
        let ckpt = try TFCheckpoint(directory: layoutDir())
        XCTAssertEqual(ckpt.entries.count, 148)
        XCTAssertEqual(ckpt.numShards, 1)
        XCTAssertEqual(ckpt.prefix, "model.ckpt")
        XCTAssertEqual(ckpt.entries["model/wte"]?.shape, [50257, 768])
        XCTAssertEqual(ckpt.entries["model/wte"]?.dtype, .float)
        XCTAssertEqual(ckpt.entries["model/wpe"]?.shape, [1024, 768])
        XCTAssertEqual(ckpt.entries["model/h0/attn/c_attn/w"]?.shape, [1, 768, 2304])
        XCTAssertEqual(ckpt.entries["model/h11/mlp/c_proj/w"]?.shape, [1, 3072, 768])
        XCTAssertEqual(ckpt.entries["model/ln_f/g"]?.shape, [768])
        let first = try XCTUnwrap(ckpt.entries["model/h0/attn/c_attn/b"])
        XCTAssertEqual(first.offset, 0)
        XCTAssertEqual(first.size, 2304 * 4)
        // 124,439,808 float32 parameters = 497,759,232 bytes, as the assets README says.
        XCTAssertEqual(ckpt.requiredShardSizes[0], 497_759_232)
        XCTAssertEqual(ckpt.entries.values.reduce(0) { $0 + $1.size }, 497_759_232)
        // Every variable maps onto the HF names of gpt2-small, one to one.
        let mapped = Set(ckpt.entries.keys.compactMap(TFCheckpoint.hfName(forTF:)))
        XCTAssertEqual(mapped, Set(ParameterLayout(config: .small, head: .languageModel).tensors.map(\.name)))
        XCTAssertEqual(try ckpt.config(), .small)
    }

    func testNameMapping() {
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/wte"), "wte.weight")
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/h3/ln_1/g"), "h.3.ln_1.weight")
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/h3/ln_2/b"), "h.3.ln_2.bias")
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/h10/attn/c_attn/w"), "h.10.attn.c_attn.weight")
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/h0/mlp/c_proj/b"), "h.0.mlp.c_proj.bias")
        XCTAssertEqual(TFCheckpoint.hfName(forTF: "model/ln_f/g"), "ln_f.weight")
        XCTAssertNil(TFCheckpoint.hfName(forTF: "model/h0/attn/other/w"))
        XCTAssertNil(TFCheckpoint.hfName(forTF: "global_step"))
    }

    func testTheOneCompleteTensorReadsBackWithItsChecksum() throws {
        let ckpt = try TFCheckpoint(directory: layoutDir())
        XCTAssertNotNil(ckpt.entries["model/h0/attn/c_attn/b"]?.crc32c)
        let b = try ckpt.floats("model/h0/attn/c_attn/b")  // verifies the masked crc32c
        XCTAssertEqual(b.count, 2304)
        let want: [Float] = [0.480339, -0.525433, -0.429265, -0.205952, -0.127734, -0.095427]
        for (g, w) in zip(b, want) { XCTAssertEqual(g, w, accuracy: 1e-6) }
    }

    func testLoadingTheTruncatedCheckpointSaysTruncated() throws {
        let dir = try layoutDir()
        let m = errorMessage { _ = try loadTFCheckpoint(directory: dir, config: .small, head: .languageModel) }
        assertMessage(m, contains: ["truncated", "model.ckpt.data-00000-of-00001", "497759232", "3145728"])
        let ckpt = try TFCheckpoint(directory: dir)
        assertMessage(errorMessage { _ = try ckpt.floats("model/wte") },
                      contains: ["truncated", "\"model/wte\"", "model.ckpt.data-00000-of-00001", "3145728"])
        assertMessage(errorMessage { _ = try ckpt.floats("model/nothing") }, contains: ["\"model/nothing\""])
    }

    func testConfigMismatchIsNamed() throws {
        let dir = try layoutDir()
        let m = errorMessage { _ = try loadTFCheckpoint(directory: dir, config: .medium, head: .languageModel) }
        assertMessage(m, contains: ["gpt2-medium", "n_layers 24", "n_layers 12, emb_dim 768", "hparams.json"])
    }

    func testDamagedIndexIsRejected() throws {
        let src = try layoutDir()
        let dir = try TestPaths.makeTempDir("tfindex")
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["checkpoint", "hparams.json", "model.ckpt.index"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let index = dir.appendingPathComponent("model.ckpt.index")
        let good = try Data(contentsOf: index)
        XCTAssertEqual(try TFCheckpoint(directory: dir).entries.count, 148)

        var flipped = good
        flipped[100] ^= 0x01
        try flipped.write(to: index)
        assertMessage(errorMessage { _ = try TFCheckpoint(directory: dir) }, contains: ["model.ckpt.index", "checksum"])

        var badMagic = good
        badMagic[badMagic.count - 1] ^= 0xff
        try badMagic.write(to: index)
        assertMessage(errorMessage { _ = try TFCheckpoint(directory: dir) }, contains: ["magic"])

        try good.prefix(30).write(to: index)
        assertMessage(errorMessage { _ = try TFCheckpoint(directory: dir) }, contains: ["48-byte"])

        // Without its data file the checkpoint cannot load, and the message says which file.
        try good.write(to: index)
        assertMessage(errorMessage { _ = try loadTFCheckpoint(directory: dir, config: .small, head: .languageModel) },
                      contains: ["missing", "model.ckpt.data-00000-of-00001"])
        try FileManager.default.removeItem(at: index)
        assertMessage(errorMessage { _ = try TFCheckpoint(directory: dir) }, contains: ["index not found"])
    }
}

/// A complete tiny checkpoint written by TensorFlow's own SaveV2 op with OpenAI's variable names
/// (tools/reference/make_weights_fixture.py --tf), holding the same model as tiny-gpt2.
final class WeightsTFWrittenCheckpointTests: WeightsTestCase {
    var tfDir: URL { weightsFixtures.appendingPathComponent("tiny-gpt2-tf") }

    func testLoadsToTheSameBufferAsTheHuggingFaceFile() throws {
        let ckpt = try TFCheckpoint(directory: tfDir)
        XCTAssertEqual(ckpt.entries.count, 28)
        XCTAssertEqual(ckpt.entries["model/h0/attn/c_attn/w"]?.shape, [1, 64, 192])
        XCTAssertEqual(ckpt.entries["model/h1/mlp/c_proj/w"]?.shape, [1, 256, 64])
        XCTAssertTrue(ckpt.entries.values.allSatisfy { $0.crc32c != nil })
        let hp = try ckpt.config()
        XCTAssertTrue(WeightsShape.of(tinyConfig).matches(hp))
        XCTAssertEqual(hp.nHeads, 4)
        let fromTF = try loadTFCheckpoint(directory: tfDir, config: tinyConfig, head: .languageModel)
        let fromHF = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig, head: .languageModel)
        XCTAssertEqual(fromTF, fromHF)
        let cls = try loadTFCheckpoint(directory: tfDir, config: tinyConfig, head: .classifier(numClasses: 2), headInitSeed: 9)
        let clsHF = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig,
                                      head: .classifier(numClasses: 2), headInitSeed: 9)
        XCTAssertEqual(cls, clsHF)
    }

    func testDamagedOrTruncatedDataAndWrongConfigAreNamed() throws {
        let dir = try TestPaths.makeTempDir("tfwritten")
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in try FileManager.default.contentsOfDirectory(atPath: tfDir.path) {
            try FileManager.default.copyItem(at: tfDir.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        var threeLayers = tinyConfig
        threeLayers.nLayers = 3
        assertMessage(errorMessage { _ = try loadTFCheckpoint(directory: dir, config: threeLayers, head: .languageModel) },
                      contains: ["n_layers 3", "hparams.json says n_layers 2, emb_dim 64"])

        let dataURL = dir.appendingPathComponent("model.ckpt.data-00000-of-00001")
        let good = try Data(contentsOf: dataURL)
        let ckpt = try TFCheckpoint(directory: dir)
        let (victim, entry) = ckpt.entries.first { $0.key == "model/h1/ln_2/g" }!
        var flipped = good
        flipped[entry.offset + 5] ^= 0x10
        try flipped.write(to: dataURL)
        assertMessage(errorMessage { _ = try loadTFCheckpoint(directory: dir, config: tinyConfig, head: .languageModel) },
                      contains: ["\"\(victim)\"", "checksum", "model.ckpt.data-00000-of-00001"])

        try good.dropLast(100).write(to: dataURL)
        assertMessage(errorMessage { _ = try loadTFCheckpoint(directory: dir, config: tinyConfig, head: .languageModel) },
                      contains: ["truncated", "requires \(good.count) bytes", "has \(good.count - 100)"])

        // Restored, the same folder loads again: the errors above came from the damage alone.
        try good.write(to: dataURL)
        XCTAssertNoThrow(try loadTFCheckpoint(directory: dir, config: tinyConfig, head: .languageModel))
    }
}

import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import Quantization
import TestSupport
import TrainingKit
import Classification
import XCTest

/// QLoRA for the chapter-6 classifier: over a quantized base (its Linear weights NF4 or int8, its
/// token embedding int8) the classifier computes what the float32 classifier over the
/// dequantized weights computes, holds no float32 copy of the base itself, and the train stage
/// writes quantized-base.bin once, reuses it, resumes, and writes a checkpoint `evaluate` reads.
final class QLoRAClassifierTests: XCTestCase {
    static let config = GPT2Config(name: "q-tiny-cls", vocabSize: 60, contextLength: 16, embDim: 128, nHeads: 4, nLayers: 2)
    static let layout = ParameterLayout(config: config, head: .classifier(numClasses: 3))

    /// Adapters with every value random and non-zero (B too, so every gradient is non-zero).
    func adapters() throws -> LoRAWeights {
        let start = try LoRAWeights.initial(for: Self.layout, settings: LoRASettings(rank: 4, alpha: 8), seed: 3)
        var g = SeededGenerator(seed: 11)
        return try LoRAWeights(settings: start.settings, layout: start.layout, values: start.values.map { _ in g.uniform(-0.05, 0.05) })
    }

    /// Four rows of different real lengths (flexible pooling reads each row's last real token).
    let split: DataSplit = {
        var g = SeededGenerator(seed: 5)
        let lengths = [12, 7, 3, 10]
        var tokens: [Int32] = []
        for n in lengths { tokens += (0..<12).map { $0 < n ? Int32(g.next() % 59) : 59 } }
        return DataSplit(name: "train", rows: LabeledRows(tokens: tokens, labels: [0, 2, 1, 2], lengths: lengths, sequenceLength: 12,
                                                          padTokenID: 59, numClasses: 3))
    }()

    /// The classifier over a quantized base (`type`) or, with `type` nil, over `float32` weights.
    func classifier(_ type: QuantizationType?, float32: [Float], lora: LoRAWeights) throws -> ClassifierModel {
        let pooling = Pooling(position: .flexible)
        guard let type else {
            let backend = try GPT2Backend(layout: Self.layout, parameters: float32)
            try backend.attachLoRA(lora)
            return try ClassifierModel(backend: backend, parameters: float32 + lora.values, pooling: pooling, trainable: .lora)
        }
        let model = try GPT2Model(layout: Self.layout, params: float32)
        try model.quantizeBase(type)
        let backend = try GPT2Backend(qloraModel: model)
        try backend.attachLoRA(lora)
        let head = model.withParameters { Array($0[backend.vectorStart...]) }
        return try ClassifierModel(backend: backend, parameters: head + lora.values, pooling: pooling, trainable: .lora)
    }

    func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    func testLossAndLoRAGradientsEqualTheFloat32ClassifierOverTheDequantizedBase() throws {
        let original = randomWeights(layout: Self.layout, seed: 7, scheme: .gpt2)
        let lora = try adapters()
        let rows = [0, 1, 2, 3]
        for type in QuantizationType.allCases {
            let q = try classifier(type, float32: original, lora: lora)
            let dequantized = (q.backend as! GPT2Backend).model.parametersWithDequantizedBase()
            let twin = try classifier(nil, float32: dequantized, lora: lora)
            // The quantized classifier holds only the head and the adapters.
            let head = try XCTUnwrap(Self.layout.spec(named: "out_head.weight"))
            XCTAssertEqual(q.vectorStart, head.offset)
            XCTAssertEqual(q.parameters.count, Self.layout.totalCount - head.offset + lora.values.count)
            XCTAssertEqual(q.trainableRange.count, twin.trainableRange.count)

            let lossQ = try q.computeGradients(rows: rows, of: split)
            let lossT = try twin.computeGradients(rows: rows, of: split)
            XCTAssertEqual(lossQ, lossT, accuracy: 1e-5 * abs(lossT), "\(type) loss")
            let gq = Array(q.gradients[q.trainableRange]), gt = Array(twin.gradients[twin.trainableRange])
            XCTAssertGreaterThan(gt.filter { $0 != 0 }.count, gt.count / 2, "\(type): most adapter gradients are non-zero")
            XCTAssertLessThan(maxRelativeDifference(gq, gt), 1e-4, "\(type) adapter gradients (the head's included)")
            let headA = Self.layout.totalCount + (try LoRALayout(layout: Self.layout, rank: 4)).adapters(of: "out_head")[0].aOffset
            XCTAssertNotEqual(q.gradients[headA - q.vectorStart], 0, "\(type): the head's adapter trains")

            // Quantization changed the model: the float32 original computes other logits.
            let float32 = try classifier(nil, float32: original, lora: lora)
            XCTAssertGreaterThan(maxRelativeDifference(try q.logits(rows: rows, of: split).flatMap { $0 },
                                                       try float32.logits(rows: rows, of: split).flatMap { $0 }), 1e-4, "\(type)")
            // The checkpoint tensors are the dequantized base, the head from the classifier's own vector.
            for s in Self.layout.tensors { XCTAssertEqual(q.checkpointTensor(s), Array(dequantized[s.range]), s.name) }
        }
    }

    func testAQuantizedBaseTrainsOnlyAdapters() throws {
        let model = try GPT2Model(layout: Self.layout, params: randomWeights(layout: Self.layout, seed: 7))
        try model.quantizeBase(.nf4)
        let backend = try GPT2Backend(qloraModel: model)
        let head = model.withParameters { Array($0[backend.vectorStart...]) }
        XCTAssertThrowsError(try ClassifierModel(backend: backend, parameters: head, pooling: Pooling(), trainable: .lastBlock)) {
            XCTAssertTrue("\($0)".contains("a quantized base trains only LoRA adapters"), "\($0)")
        }
    }

    // MARK: the train stage

    var dir: URL!
    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("qlora-classifier") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func options(_ prepared: URL, _ type: BaseQuantization = .nf4) -> ClassifierTrainOptions {
        var o = StageTests.options(prepared, in: dir, epochs: 3)
        o.settings.trainableLayers = .lora
        o.settings.loraRank = 2
        o.settings.loraAlpha = 4
        o.settings.quantizeBase = type
        return o
    }

    func run(_ o: ClassifierTrainOptions) throws -> (result: ClassifierTrainResult, notes: [String]) {
        var notes: [String] = []
        let r = try ClassifierTrainStage.run(o, makeBackend: StageTests.backend) { if case .note(let t) = $0 { notes.append(t) } }
        return (r, notes)
    }

    func testStageWritesTheQuantizedBaseOnceReusesItResumesAndEvaluates() throws {
        let prepared = try StageTests.writePrepared(in: dir)
        let out = dir.appendingPathComponent("train"), file = out.appendingPathComponent(QuantizedBaseArtifact.fileName)
        let whole = try run(options(prepared))
        XCTAssertTrue(whole.notes.contains { $0.hasPrefix("quantized the base's Linear weights to nf4") }, "\(whole.notes)")
        let written = try FileHash.sha256(of: file)

        // A second run into the folder reads the file (never quantizing again), stops, and resumes exactly.
        var o = options(prepared)
        o.stopAfterSteps = 4
        let stopped = try run(o)
        XCTAssertTrue(stopped.result.outcome.interrupted)
        XCTAssertTrue(stopped.notes.contains("quantized base (nf4) read from \(file.path)"), "\(stopped.notes)")
        XCTAssertFalse(stopped.notes.contains { $0.hasPrefix("quantized the base") })
        o.stopAfterSteps = nil
        o.resume = .required
        let resumed = try run(o)
        XCTAssertEqual(try FileHash.sha256(of: file), written)
        XCTAssertEqual(resumed.result.outcome.log.map(\.trainLoss), whole.result.outcome.log.map(\.trainLoss))
        XCTAssertEqual(resumed.result.outcome.log.map(\.valAccuracy), whole.result.outcome.log.map(\.valAccuracy))

        // The checkpoint: the dequantized base (not the float32 start), the trained adapters, quantized_base.
        let ckpt = try loadCheckpointWithLoRA(from: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ckpt.metadata[QuantizedBaseArtifact.checkpointKey], "nf4")
        let s = o.settings
        let base = try QuantizedBaseArtifact.loadModel(file, layout: ckpt.layout, baseIdentity: "random seed \(s.seed)", type: .nf4)
        XCTAssertEqual(ckpt.params, base.parametersWithDequantizedBase())
        XCTAssertNotEqual(ckpt.params, try BaseWeights.load(s.base, seed: s.seed, layout: ckpt.layout).parameters)
        XCTAssertNotEqual(try XCTUnwrap(ckpt.lora).values,
                          try LoRAWeights.initial(for: ckpt.layout, settings: LoRASettings(rank: 2, alpha: 4), seed: s.seed).values)
        let manifest = try XCTUnwrap(resumed.result.manifest)
        XCTAssertEqual(manifest.params["quantize_base"], "nf4")
        XCTAssertEqual(manifest.stats["quantized_base_bytes"], .int(base.quantizedBaseWeights!.byteCount))
        XCTAssertNotEqual(manifest.stats["peak_rss_bytes"], .null)
        XCTAssertTrue(manifest.outputs.contains { $0.path == QuantizedBaseArtifact.fileName }, "\(manifest.outputs.map(\.path))")

        // evaluate reads the QLoRA checkpoint (base + merged adapters) and reproduces the trainer's last validation accuracy.
        var eo = ClassifierEvaluateOptions(model: out, prepared: prepared, output: dir.appendingPathComponent("eval"))
        eo.pngConverter = "no-such-converter-for-tests"
        let r = try ClassifierEvaluateStage.run(eo, makeBackend: StageTests.backend)
        XCTAssertEqual(r.metrics["validation"]?.accuracy ?? -1, whole.result.outcome.log.last!.valAccuracy!, accuracy: 1e-9)

        // Another type into the same folder rewrites the file (it was made for nf4).
        let int8 = try run(options(prepared, .int8))
        XCTAssertTrue(int8.notes.contains { $0.hasPrefix("quantized the base's Linear weights to int8") }, "\(int8.notes)")
        XCTAssertEqual(try QuantizedBaseFile.readMeta(file).meta.type, "int8")
    }

    func testQuantizeBaseWithoutLoRAIsRefusedBeforeAnythingIsWritten() throws {
        let prepared = try StageTests.writePrepared(in: dir)
        var o = options(prepared)
        o.settings.trainableLayers = .lastBlock
        XCTAssertThrowsError(try run(o)) { error in
            let e = error as? PipelineError
            XCTAssertTrue(e?.message.contains("needs LoRA") == true && e?.message.contains("full fine-tuning, not QLoRA") == true, "\(error)")
            XCTAssertTrue(e?.hint?.contains("--trainable-layers lora") == true, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("train").path))
    }
}

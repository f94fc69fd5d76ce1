import ArtifactKit
import Foundation
import GPT2Weights
import GPT2
import TestSupport
import TrainingKit
import Instruct
import XCTest

/// A tiny instruction data set prepared by the real `prepare instruct` code with the GPT-2
/// vocabulary of the shared assets, and a tiny GPT-2 with the full 50257-token vocabulary.
enum TinyInstruct {
    static let config = GPT2Config(name: "tiny", vocabSize: 50257, contextLength: 96, embDim: 16, nHeads: 2, nLayers: 2)

    static func vocab() throws -> URL {
        guard let assets = TestPaths.sharedAssets else {
            throw XCTSkip("shared assets (../shared/assets or $LLMFT_ASSETS) not present: the GPT-2 vocabulary is needed")
        }
        return assets.appendingPathComponent("gpt2")
    }

    /// 30 short entries (about half with an input): 25 train, 3 test, 2 validation rows.
    static func entries() -> [InstructionEntry] {
        let words = ["red", "blue", "green", "fast", "slow", "cat", "dog", "sun", "rain", "tree"]
        return (0..<30).map { i in
            let a = words[i % 10], b = words[(i * 3 + 1) % 10]
            return i % 2 == 0
                ? InstructionEntry(instruction: "Give the opposite of \(a).", output: "The opposite of \(a) is \(b).")
                : InstructionEntry(instruction: "Repeat the word.", input: "\(a) \(b)", output: "\(a) \(b)")
        }
    }

    static func prepare(into dir: URL) throws -> URL {
        let input = dir.appendingPathComponent("instruction-data.json")
        try InstructionEntries.encoded(entries()).write(to: input)
        let out = dir.appendingPathComponent("prepared")
        _ = try prepareInstructionDataset(InstructionPrepareOptions(input: input, vocabDirectory: try vocab(), output: out))
        return out
    }

    static func settings(epochs: Int = 2) -> InstructSettings {
        var s = InstructSettings()
        s.model = "tiny"
        s.weights = .random
        s.epochs = epochs
        s.batchSize = 4
        s.evalFreq = 2
        s.evalIter = 2
        s.saveEvery = 0
        s.learningRate = 1e-3
        return s
    }

    static func options(_ prepared: URL, _ out: URL, _ s: InstructSettings) -> InstructTrainOptions {
        var o = InstructTrainOptions(prepared: prepared, output: out, settings: s)
        o.config = config
        return o
    }
}

final class InstructTrainTests: XCTestCase {
    func testTrainWritesCheckpointLogStateAndManifest() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        var s = TinyInstruct.settings()
        s.maxSteps = 2
        let out = dir.appendingPathComponent("train")
        let r = try InstructTrainStage.run(TinyInstruct.options(prepared, out, s))
        XCTAssertFalse(r.outcome.interrupted)
        XCTAssertEqual(r.outcome.steps, 2)
        XCTAssertEqual(r.outcome.examplesSeen, 8)
        for f in ["model.safetensors", "log.jsonl", "state", "manifest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let ckpt = try loadCheckpoint(from: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ckpt.layout.head, .languageModel)
        XCTAssertEqual(ckpt.layout.config, TinyInstruct.config)
        XCTAssertEqual(ckpt.metadata["prompt_style"], "alpaca")
        XCTAssertEqual(ckpt.metadata["trainable"], "all")
        // Every tensor trains (full fine-tuning): all differ from the random start.
        let start = randomWeights(layout: ckpt.layout, seed: s.seed, scheme: s.initScheme)
        for spec in ckpt.layout.tensors {
            XCTAssertNotEqual(Array(ckpt.params[spec.range]), Array(start[spec.range]), spec.name)
        }
        let log = try LogRecord.readLog(out.appendingPathComponent("log.jsonl"))
        XCTAssertEqual(log.map(\.step), [1])  // eval_freq 2: after steps 1, 3, ...
        XCTAssertEqual(log[0].kind, "eval")
        let m = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(m.format, "instruct-training")
        XCTAssertEqual(m.params["max_steps"], 2)
        XCTAssertEqual(m.params["init"], "gpt2", "GPT-2's init is train instruct's default")
        XCTAssertEqual(m.stats["batches_per_epoch"], 6)  // 25 rows / 4, last incomplete batch dropped
        XCTAssertEqual(Set(m.outputs.map(\.path)), ["model.safetensors", "log.jsonl", "state"])
        XCTAssertTrue(m.inputs.contains { $0.path.hasSuffix("train.bin") })
        XCTAssertGreaterThan(m.stats["seconds_per_step_this_process"]?.doubleValue ?? 0, 0)
        // A --resume at the end only writes the outputs: no step in that process, so no step time (not 0).
        var again = TinyInstruct.options(prepared, out, s)
        again.resume = .required
        XCTAssertEqual(try InstructTrainStage.run(again).outcome.steps, 2)
        let m2 = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(m2.stats["seconds_per_step_this_process"], .null)
        XCTAssertEqual(m2.stats["steps"], 2)
    }

    func testTrainingLowersTheLoss() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        var s = TinyInstruct.settings(epochs: 3)
        s.evalFreq = 3
        let r = try InstructTrainStage.run(TinyInstruct.options(prepared, dir.appendingPathComponent("t"), s))
        let evals = r.outcome.log.filter { $0.kind == "eval" }
        XCTAssertEqual(r.outcome.steps, 18)
        XCTAssertEqual(evals.map(\.step), [1, 4, 7, 10, 13, 16])
        // From GPT-2's init (loss near ln 50257) this 16-wide model learns steadily but slowly: every
        // evaluation is lower than the one before (deterministic for the seed), by 0.3 or more overall.
        let trainLosses = evals.map { $0.trainLoss! }
        XCTAssertEqual(trainLosses, trainLosses.sorted(by: >), "\(trainLosses)")
        XCTAssertLessThan(trainLosses.last!, trainLosses.first! - 0.3, "\(trainLosses)")
        XCTAssertLessThan(evals.last!.valLoss!, evals.first!.valLoss!, "\(evals.map { $0.valLoss! })")
    }

    func testResumeEqualsUninterrupted() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        let s = TinyInstruct.settings(epochs: 2)
        let whole = dir.appendingPathComponent("whole"), parts = dir.appendingPathComponent("parts")
        let a = try InstructTrainStage.run(TinyInstruct.options(prepared, whole, s))
        // Stop in the middle of the second epoch, then continue.
        var o = TinyInstruct.options(prepared, parts, s)
        o.stopAfterSteps = 8
        let first = try InstructTrainStage.run(o)
        XCTAssertTrue(first.outcome.interrupted)
        XCTAssertFalse(FileManager.default.fileExists(atPath: parts.appendingPathComponent("model.safetensors").path))
        o.stopAfterSteps = nil
        o.resume = .required
        let b = try InstructTrainStage.run(o)
        XCTAssertEqual(a.outcome.steps, 12)
        XCTAssertEqual(b.outcome.steps, 12)
        XCTAssertEqual(a.outcome.log.map(\.trainLoss), b.outcome.log.map(\.trainLoss))
        XCTAssertEqual(a.outcome.log.map(\.valLoss), b.outcome.log.map(\.valLoss))
        let pa = try loadCheckpoint(from: whole.appendingPathComponent("model.safetensors")).params
        let pb = try loadCheckpoint(from: parts.appendingPathComponent("model.safetensors")).params
        XCTAssertEqual(pa, pb)
    }

    func testResumeWithDifferentParamsOrWithoutStateIsRejected() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        let out = dir.appendingPathComponent("t")
        var o = TinyInstruct.options(prepared, out, TinyInstruct.settings())
        o.resume = .required
        XCTAssertThrowsError(try InstructTrainStage.run(o)) { XCTAssertTrue("\($0)".contains("no resume state"), "\($0)") }
        o.resume = .never
        o.stopAfterSteps = 1
        _ = try InstructTrainStage.run(o)
        o.resume = .required
        o.settings.learningRate = 2e-3
        XCTAssertThrowsError(try InstructTrainStage.run(o)) {   // the message names the param that changed, on one line
            XCTAssertTrue("\($0)".contains("different train params (lr: 0.001 -> 0.002)"), "\($0)")
        }
        o.settings.learningRate = 1e-3
        o.settings.maskInstructions = true
        XCTAssertThrowsError(try InstructTrainStage.run(o)) { XCTAssertTrue("\($0)".contains("different train params"), "\($0)") }
        // More epochs is allowed (it only moves the end).
        o.settings.maskInstructions = false
        o.settings.epochs = 3
        o.stopAfterSteps = 2
        XCTAssertEqual(try InstructTrainStage.run(o).outcome.steps, 2)
    }

    func testNonFiniteLossStopsWithAMessage() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        let data = try InstructionDataset(directory: prepared)
        let layout = ParameterLayout(config: TinyInstruct.config, head: .languageModel)
        var params = randomWeights(layout: layout, seed: 1)
        params[layout.spec(named: "ln_f.weight")!.offset] = .nan
        let model = try GPT2Model(layout: layout, params: params)
        let trainer = InstructTrainer(model: model, train: try data.shard(.train), validation: try data.shard(.validation),
                                      settings: TinyInstruct.settings(), cut: 96, inputsKey: "x", stateURL: nil)
        XCTAssertThrowsError(try trainer.run()) { e in
            XCTAssertTrue(e is PipelineError)
            XCTAssertTrue("\(e)".contains("step 1 (epoch 1)") && "\(e)".contains("not a finite number"), "\(e)")
        }
    }

    /// The output head is tied to wte: GPT-2's init (the default) starts at about ln(50257), a
    /// uniform guess; the book's PyTorch-default N(0, 1) embedding starts far above it.
    func testRandomWeightsStartNearTheUniformLoss() throws {
        let dir = try TestPaths.makeTempDir("itrain")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prepared = try TinyInstruct.prepare(into: dir)
        func firstLoss(_ scheme: InitScheme) throws -> Double {
            var s = TinyInstruct.settings()
            s.initScheme = scheme
            s.maxSteps = 1
            s.learningRate = 1e-9   // the first evaluation follows step 1: keep that step from moving anything
            let r = try InstructTrainStage.run(TinyInstruct.options(prepared, dir.appendingPathComponent(scheme.rawValue), s))
            return r.outcome.log[0].trainLoss!
        }
        // Logit variance about emb_dim * 0.02^2 = 0.0064 here: the loss is ln V to within a few hundredths.
        XCTAssertEqual(try firstLoss(.gpt2), log(50257.0), accuracy: 0.1)
        XCTAssertGreaterThan(try firstLoss(.torch), 15)
    }

    func testWeightsFolderResolvesToTheModelsSize() throws {
        let dir = try TestPaths.makeTempDir("iweights")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let perSize = dir.appendingPathComponent("gpt2-medium/model.safetensors")
        try fm.createDirectory(at: perSize.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: perSize)
        XCTAssertEqual(try BaseWeights.resolveWeightsFile(dir, modelName: "gpt2-medium").path, perSize.path)
        XCTAssertEqual(try BaseWeights.resolveWeightsFile(perSize, modelName: "gpt2-xl").path, perSize.path, "a file is taken as given")
        XCTAssertEqual(try BaseWeights.resolveWeightsFile(perSize.deletingLastPathComponent(), modelName: "gpt2-xl").path, perSize.path,
                       "a folder's own model.safetensors comes first")
        XCTAssertThrowsError(try BaseWeights.resolveWeightsFile(dir, modelName: "gpt2-large")) { e in
            XCTAssertTrue("\(e)".contains("no pretrained weights for gpt2-large") && "\(e)".contains("--only gpt2-large"), "\(e)")
        }
        // Through the stage: the missing size is named before anything is read.
        var s = InstructSettings()
        s.weights = .pretrained
        s.weightsFile = dir.path
        s.model = "gpt2-large"
        XCTAssertThrowsError(try BaseWeights.load(s.base, seed: s.seed,
                                                  layout: ParameterLayout(config: try GPT2Config.named("gpt2-large"), head: .languageModel))) { e in
            XCTAssertTrue("\(e)".contains("no pretrained weights for gpt2-large"), "\(e)")
        }
    }

    func testBadSettingsAreRejected() throws {
        var s = TinyInstruct.settings()
        s.lora = true
        try s.validate()
        s.loraRank = 0
        XCTAssertThrowsError(try s.validate()) {
            XCTAssertTrue("\($0)".contains("LoRA rank must be at least 1, got 0") && "\($0)".contains("train.lora_rank"), "\($0)")
        }
        s = TinyInstruct.settings()
        s.weights = .pretrained
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("needs a weights file"), "\($0)") }
        s = TinyInstruct.settings()
        s.maxSteps = 0
        XCTAssertThrowsError(try s.validate())
    }
}

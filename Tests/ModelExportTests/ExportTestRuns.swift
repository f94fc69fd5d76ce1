import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Weights
import Instruct
import ModelExport
import TestSupport
import XCTest

/// Tiny training-run folders with seeded random weights, written with the trainers' own
/// metadata keys, so an export of them is the same bytes every time (the reference script
/// tools/reference/hf_export_parity.py loads those exports with transformers / PEFT).
enum ExportTestRuns {
    static let config = GPT2Config(name: "tiny-export", vocabSize: 50257, contextLength: 32, embDim: 16, nHeads: 2, nLayers: 2)
    static let labelNames = ["ham", "spam"]
    static let classifierMaxLength = 8

    /// Every parameter uniform in [-0.1, 0.1), LayerNorm weights around 1: biases and norms
    /// that are not zero/one test their names too.
    static func noisyParameters(_ layout: ParameterLayout, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var params = (0..<layout.totalCount).map { _ in rng.uniform(-0.1, 0.1) }
        for spec in layout.tensors where spec.name.hasSuffix("ln_1.weight") || spec.name.hasSuffix("ln_2.weight") || spec.name == "ln_f.weight" {
            for i in spec.range { params[i] += 1 }
        }
        return params
    }

    /// Adapters with non-zero A and B (a fresh adapter has B = 0 and changes nothing).
    static func noisyLoRA(_ layout: ParameterLayout, rank: Int, alpha: Float, seed: UInt64) throws -> LoRAWeights {
        let l = try LoRALayout(layout: layout, rank: rank)
        var rng = SeededGenerator(seed: seed)
        return try LoRAWeights(settings: LoRASettings(rank: rank, alpha: alpha), layout: l,
                               values: (0..<l.totalCount).map { _ in rng.uniform(-0.3, 0.3) })
    }

    /// A `train instruct` output folder (model.safetensors + manifest.json).
    static func writeInstructRun(to folder: URL, lora: Bool, style: String = "alpaca") throws {
        let layout = ParameterLayout(config: config, head: .languageModel)
        let adapters = lora ? try noisyLoRA(layout, rank: 2, alpha: 1.5, seed: 21) : nil
        try saveCheckpoint(params: noisyParameters(layout, seed: 11), layout: layout,
                           metadata: [InstructTrainStage.styleKey: style, CheckpointFormat.CallerKey.trainable: lora ? "lora" : "all"],
                           to: folder.appendingPathComponent("model.safetensors"), lora: adapters)
        try Manifest(format: InstructTrainStage.manifestFormat, formatVersion: 1, tool: "train instruct").write(into: folder)
    }

    /// A `train` output folder of a 2-class classifier with the given pooling.
    static func writeClassifierRun(to folder: URL, position: TokenPosition, average: Bool = false, lora: Bool = false) throws {
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))
        var s = ClassifierSettings()
        s.pooling = Pooling(position: position, averageEmbeddings: average)
        if lora { (s.trainableLayers, s.loraRank, s.loraAlpha) = (.lora, 2, 2) }
        let adapters = lora ? try noisyLoRA(layout, rank: 2, alpha: 2, seed: 31) : nil
        try ClassifierCheckpoint.save(parameters: noisyParameters(layout, seed: 12), layout: layout, metadata: [
            ClassifierCheckpoint.settingsKey: JSONValue.object(s.asJSON).canonicalString,
            ClassifierCheckpoint.maxLengthKey: String(classifierMaxLength),
            ClassifierCheckpoint.padTokenKey: "50256",
            ClassifierCheckpoint.labelNamesKey: ClassifierCheckpoint.labelNamesValue(labelNames),
        ], to: folder.appendingPathComponent("model.safetensors"), lora: adapters)
        try Manifest(format: ClassifierTrainStage.manifestFormat, formatVersion: 1, tool: "train").write(into: folder)
    }

    /// The GPT-2 tokenizer files (shared assets), or nil when absent.
    static var vocabulary: URL? { TestPaths.sharedAssets?.appendingPathComponent("gpt2") }

    /// One export case of the reference fixture: how its run is made and exported.
    struct Case {
        var name: String
        var kind: String          // "lm" or "classifier"
        var merge = false
        var write: (URL) throws -> Void
    }

    static let cases: [Case] = [
        Case(name: "instruct", kind: "lm", write: { try writeInstructRun(to: $0, lora: false) }),
        Case(name: "instruct-lora-peft", kind: "lm", write: { try writeInstructRun(to: $0, lora: true) }),
        Case(name: "instruct-lora-merged", kind: "lm", merge: true, write: { try writeInstructRun(to: $0, lora: true) }),
        Case(name: "classifier-last", kind: "classifier", write: { try writeClassifierRun(to: $0, position: .last) }),
        Case(name: "classifier-flexible", kind: "classifier", write: { try writeClassifierRun(to: $0, position: .flexible) }),
        Case(name: "classifier-lora-merged", kind: "classifier", merge: true,
             write: { try writeClassifierRun(to: $0, position: .last, lora: true) }),
        Case(name: "classifier-lora-peft", kind: "classifier",
             write: { try writeClassifierRun(to: $0, position: .flexible, lora: true) }),
    ]

    /// Token ids the reference and the tests run: two rows of six for the language models; for
    /// the classifiers the same texts padded with 50256 to max_length (as `train` pads).
    static let lmTokens: [[Int]] = [[15496, 11, 995, 13, 314, 716], [40, 588, 257, 1332, 0, 50256]]
    static let classifierTokens: [[Int]] = [[15496, 11, 995, 13, 50256, 50256, 50256, 50256],
                                            [40, 588, 257, 1332, 0, 99, 50256, 50256]]

    /// Exports case `c` from a fresh run folder under `root` to `root/<name>-hf`.
    static func export(_ c: Case, under root: URL) throws -> URL {
        let run = root.appendingPathComponent(c.name + "-run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try c.write(run)
        let dest = root.appendingPathComponent(c.name + "-hf")
        var o = HFExportOptions(model: run, destination: dest, vocabDirectory: vocabulary!)
        o.merge = c.merge
        o.destinationText = c.name + "-hf"
        _ = try HFExport.run(o)
        return dest
    }

    /// Our logits for the case's rows, as `evaluate` computes them: [rows][positions][vocab] for a
    /// language model (adapters attached, not merged), [rows][1][classes] for a classifier.
    static func ourLogits(_ c: Case, run: URL) throws -> [[[Float]]] {
        let url = run.appendingPathComponent("model.safetensors")
        if c.kind == "lm" {
            let ckpt = try loadCheckpointWithLoRA(from: url)
            let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
            if let lora = ckpt.lora { try model.attachLoRA(lora) }
            let T = lmTokens[0].count, V = config.vocabSize
            let flat = try model.logits(tokens: lmTokens.flatMap { $0 }.map(Int32.init), batch: lmTokens.count, seqLen: T)
            return (0..<lmTokens.count).map { b in (0..<T).map { t in Array(flat[((b * T + t) * V)..<((b * T + t + 1) * V)]) } }
        }
        let loaded = try ClassifierCheckpoint.load(from: url)
        let backend = try GPT2Backend(layout: loaded.layout, parameters: loaded.parameters)
        let head = try ClassifierHead(layout: loaded.layout)
        let T = classifierTokens[0].count
        let final = try backend.forwardTop(.tokens(classifierTokens.flatMap { $0 }.map(Int32.init)), batch: classifierTokens.count,
                                           length: T, startBlock: 0, keepActivations: false)
        let pooled = classifierTokens.map { row in
            loaded.settings.pooling.pooledPositions(realLength: row.firstIndex(of: 50256) ?? row.count, batchLength: T)
        }
        let logits = head.logits(pooled: head.pool(final: final, length: T, pooled: pooled), parameters: loaded.parameters)
        return (0..<classifierTokens.count).map { b in [Array(logits[(b * 2)..<(b * 2 + 2)])] }
    }
}

/// A test case with a fresh temporary folder `root`, skipped without the GPT-2 vocabulary files.
class ExportTestCase: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        guard ExportTestRuns.vocabulary != nil else { throw XCTSkip("the shared assets (gpt2/encoder.json, vocab.bpe) are absent") }
        root = try TestPaths.makeTempDir("hf-export")
    }

    override func tearDownWithError() throws {
        if let root { try? FileManager.default.removeItem(at: root) }
    }
}

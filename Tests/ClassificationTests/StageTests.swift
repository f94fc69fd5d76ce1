import ArtifactKit
import GPT2
import GPT2Weights
import TestSupport
import TrainingKit
import Classification
import XCTest

/// The train and evaluate stages end to end on a tiny GPT-2 and tiny shards written here.
final class StageTests: XCTestCase {
    static let config = GPT2Config(name: "tiny", vocabSize: 40, contextLength: 16, embDim: 16, nHeads: 2, nLayers: 2)
    static func backend(_ layout: ParameterLayout, _ p: [Float]) throws -> ClassifierBackend { try GPT2Backend(layout: layout, parameters: p) }

    var dir: URL!

    override func setUpWithError() throws { dir = try TestPaths.makeTempDir("stage") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Writes data/prepared-like shards, CSVs, tokenizer files and manifest: rows of token ids <
    /// 39 padded with 39 to 8 positions; label 1 when token 3 occurs.
    func writePrepared(rows: [String: Int] = ["train": 20, "validation": 6, "test": 7], shardVersion: UInt32? = nil) throws -> URL {
        try Self.writePrepared(in: dir, rows: rows, shardVersion: shardVersion)
    }

    /// With `labelNames` of k classes, a row's label is its first token mod k, and the names go in the manifest.
    static func writePrepared(in dir: URL, rows: [String: Int] = ["train": 20, "validation": 6, "test": 7],
                              shardVersion: UInt32? = nil, labelNames: [String]? = nil) throws -> URL {
        let prepared = dir.appendingPathComponent("prepared")
        let vocab = dir.appendingPathComponent("vocab")
        try FileManager.default.createDirectory(at: prepared, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: vocab, withIntermediateDirectories: true)
        try Data("{\"a\": 0}".utf8).write(to: vocab.appendingPathComponent("encoder.json"))
        try Data("#version: 0.2\n".utf8).write(to: vocab.appendingPathComponent("vocab.bpe"))
        var g = SeededGenerator(seed: 3)
        var outputs: [FileRecord] = []
        for (name, n) in rows.sorted(by: { $0.key < $1.key }) {
            var tokens: [Int32] = [], labels: [Int] = [], lengths: [Int] = [], csv = "Label,Text\n"
            for i in 0..<n {
                let len = Int(g.next() % 8) + 1
                let row = (0..<len).map { _ in Int32(g.next() % 39) }
                let label = labelNames.map { Int(row[0]) % $0.count } ?? (row.contains(3) ? 1 : 0)
                tokens += row + [Int32](repeating: 39, count: 8 - len)
                labels.append(label)
                lengths.append(len)
                csv += "\(label == 1 ? "spam" : "ham"),\"text \(i), of \(name)\"\n"
            }
            let shard = LabeledRows(tokens: tokens, labels: labels, lengths: lengths, sequenceLength: 8, padTokenID: 39,
                                    numClasses: labelNames?.count ?? 2)
            let bin = prepared.appendingPathComponent("\(name).bin")
            var data = try ClassificationShard.encode(shard)
            if let v = shardVersion { withUnsafeBytes(of: v.littleEndian) { data.replaceSubrange(8..<12, with: $0) } }
            try data.write(to: bin)
            try Data(csv.utf8).write(to: prepared.appendingPathComponent("\(name).csv"))
            outputs.append(try FileRecord.of(bin, as: "\(name).bin"))
        }
        let inputs = try ["encoder.json", "vocab.bpe"].map { try FileRecord.of(vocab.appendingPathComponent($0)) }
        var params: [String: JSONValue] = ["pad_token_id": 39]
        if let labelNames { params["label_names"] = .array(labelNames.map { .string($0) }) }
        try Manifest(format: "classification-dataset", formatVersion: 1, tool: "test", params: params,
                     inputs: inputs, outputs: outputs, stats: ["max_length": 8]).write(into: prepared)
        return prepared
    }

    func options(_ prepared: URL, epochs: Int = 2) -> ClassifierTrainOptions { Self.options(prepared, in: dir, epochs: epochs) }

    static func options(_ prepared: URL, in dir: URL, epochs: Int = 2) -> ClassifierTrainOptions {
        var s = ClassifierSettings()
        s.weights = .random
        s.epochs = epochs
        s.batchSize = 4
        s.evalFreq = 2
        s.evalIter = 2
        s.learningRate = 1e-2
        var o = ClassifierTrainOptions(prepared: prepared, output: dir.appendingPathComponent("train"), settings: s)
        o.config = Self.config
        return o
    }

    /// Three named classes: the head has 3 outputs, the checkpoint keeps the names, evaluate reports
    /// them (3 x 3 confusion, per-class rows, predictions by name) and refuses data with other names.
    func testThreeNamedClassesFlowFromShardsToTheReport() throws {
        let prepared = try Self.writePrepared(in: dir, labelNames: ["rewrite", "question", "generate"])
        _ = try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)
        let out = dir.appendingPathComponent("train")
        let ckpt = try ClassifierCheckpoint.load(from: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(ckpt.numClasses, 3)
        XCTAssertEqual(ckpt.labelNames, ["rewrite", "question", "generate"])
        var eo = ClassifierEvaluateOptions(model: out, prepared: prepared, output: dir.appendingPathComponent("eval"))
        eo.pngConverter = "no-such-converter-for-tests"
        let r = try ClassifierEvaluateStage.run(eo, makeBackend: Self.backend)
        let test = try XCTUnwrap(r.metrics["test"])
        XCTAssertEqual(test.confusion.count, 3)
        XCTAssertEqual(test.confusion.flatMap { $0 }.reduce(0, +), 7)
        XCTAssertEqual(test.classes.map(\.name), ["rewrite", "question", "generate"])
        let csv = try String(contentsOf: eo.output.appendingPathComponent("predictions.csv"), encoding: .utf8)
        XCTAssertTrue(csv.hasPrefix("text,label,predicted,label_name,predicted_name,rewrite_probability,question_probability,generate_probability\n"), csv)
        let metrics = try String(contentsOf: eo.output.appendingPathComponent("metrics.json"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"weighted\"") && metrics.contains("\"macro\""), metrics)

        var manifest = try Manifest.read(from: prepared.appendingPathComponent("manifest.json"))
        manifest.params["label_names"] = ["a", "b", "c"]
        try manifest.write(into: prepared)
        let e = DataPrepFixtures.pipelineError { _ = try ClassifierEvaluateStage.run(eo, makeBackend: Self.backend) }
        XCTAssertTrue(e?.message.contains("trained on the classes rewrite, question, generate") ?? false, e?.description ?? "")
    }

    func testTrainThenEvaluateThenClassify() throws {
        let prepared = try writePrepared()
        let result = try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)
        XCTAssertFalse(result.outcome.interrupted)
        XCTAssertEqual(result.outcome.steps, 2 * 5)
        let out = dir.appendingPathComponent("train")
        for f in ["model.safetensors", "log.jsonl", "state", "manifest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let log = try LogRecord.readLog(out.appendingPathComponent("log.jsonl"))
        XCTAssertEqual(log, result.outcome.log)
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.stats["steps"], 10)
        XCTAssertEqual(manifest.stats["frozen_trunk_cached"], true)

        // evaluate: full splits, files, and the reloaded model reproduces the trainer's predictions.
        let evalDir = dir.appendingPathComponent("eval")
        var eo = ClassifierEvaluateOptions(model: out, prepared: prepared, output: evalDir)
        eo.pngConverter = "no-such-converter-for-tests"
        let r = try ClassifierEvaluateStage.run(eo, makeBackend: Self.backend)
        XCTAssertEqual(r.metrics["train"]?.rows, 20)
        XCTAssertEqual(r.metrics["test"]?.rows, 7)
        XCTAssertNotNil(r.pngSkipped)
        for f in ["metrics.json", "predictions.csv", "loss.svg", "accuracy.svg", "manifest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: evalDir.appendingPathComponent(f).path), f)
        }
        let csv = try CSV.parse(String(contentsOf: evalDir.appendingPathComponent("predictions.csv"), encoding: .utf8), source: "p")
        XCTAssertEqual(csv.count, 8)
        XCTAssertEqual(csv[1][0], "text 0, of test")

        // classify: the same row through TextClassifier gives the probability in predictions.csv.
        let classifier = try TextClassifier(modelDirectory: out, makeBackend: Self.backend)
        let data = try ClassificationDataset.load(from: prepared)
        let row = data.test.row(0).prefix(data.test.lengths[0]).map { Int($0) }
        let p = try classifier.probabilities(tokens: row)
        XCTAssertEqual(Double(p[1]), Double(csv[1][6])!, accuracy: 1e-5)
        // Longer than max length but inside the context: cut to max length like training.
        XCTAssertEqual(try classifier.probabilities(tokens: row + [Int](repeating: 5, count: 8)).count, 2)
        XCTAssertThrowsError(try classifier.probabilities(tokens: [])) { XCTAssertTrue("\($0)".contains("empty")) }
        XCTAssertThrowsError(try classifier.probabilities(tokens: [Int](repeating: 1, count: 17))) {
            XCTAssertTrue("\($0)".contains("more than the model's context of 16"), "\($0)")
        }
    }

    /// `train` writes the frozen-trunk states of every row (trunk.bin); `evaluate` reads them when
    /// they belong to its checkpoint and shards and gives byte-identical metrics and predictions to
    /// recomputing them, and the same probabilities (to float rounding) as running every layer.
    func testEvaluateReusesTheTrunkStatesOfTrainWithTheSameNumbers() throws {
        let prepared = try writePrepared()
        let out = dir.appendingPathComponent("train"), trunkURL = out.appendingPathComponent("trunk.bin")
        func evaluate(_ name: String) throws -> (result: ClassifierEvaluateResult, metrics: Data, predictions: Data) {
            var eo = ClassifierEvaluateOptions(model: out, prepared: prepared, output: dir.appendingPathComponent(name))
            eo.pngConverter = "no-such-converter-for-tests"
            let r = try ClassifierEvaluateStage.run(eo, makeBackend: Self.backend)
            return (r, try Data(contentsOf: eo.output.appendingPathComponent("metrics.json")),
                    try Data(contentsOf: eo.output.appendingPathComponent("predictions.csv")))
        }
        // The tiny model has 2 blocks: last_two_blocks freezes only the embeddings (no file: they
        // are cheaper to recompute than to store), `all` freezes nothing.
        for (trainable, pooling) in [(TrainableLayers.lastBlock, Pooling(position: .last)),
                                     (.lastBlock, Pooling(position: .flexible, averageEmbeddings: true)),
                                     (.lastLayer, Pooling(position: .first)), (.lastTwoBlocks, Pooling(position: .flexible)),
                                     (.all, Pooling(position: .last))] {
            var o = options(prepared)
            o.settings.trainableLayers = trainable
            o.settings.pooling = pooling
            let trained = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
            let label = "\(trainable) \(pooling)"
            let shared = trainable == .lastBlock || trainable == .lastLayer
            XCTAssertEqual(FileManager.default.fileExists(atPath: trunkURL.path), shared, label)
            let withFile = try evaluate("eval-file")
            if !shared {
                XCTAssertTrue(withFile.result.frozenTrunk.hasPrefix(trainable == .all ? "none" : "computed (no trunk.bin"),
                              withFile.result.frozenTrunk)
                XCTAssertNil(trained.manifest?.outputs.first { $0.path == "trunk.bin" }, "a stale trunk.bin is removed")
                continue
            }
            XCTAssertEqual(trained.manifest?.stats["trunk_rows"], 33, label)
            XCTAssertNotNil(trained.manifest?.outputs.first { $0.path == "trunk.bin" })
            XCTAssertTrue(withFile.result.frozenTrunk.hasPrefix("read from"), "\(label): \(withFile.result.frozenTrunk)")

            // Without the file: recomputed, and exactly the same bytes.
            let aside = dir.appendingPathComponent("trunk.aside")
            try FileManager.default.moveItem(at: trunkURL, to: aside)
            let recomputed = try evaluate("eval-recomputed")
            XCTAssertTrue(recomputed.result.frozenTrunk.hasPrefix("computed (no trunk.bin"), recomputed.result.frozenTrunk)
            XCTAssertEqual(withFile.metrics, recomputed.metrics, label)
            XCTAssertEqual(withFile.predictions, recomputed.predictions, label)

            // Every layer from the tokens (no split at all): the same probabilities to float rounding.
            let ckpt = try ClassifierCheckpoint.load(from: out.appendingPathComponent("model.safetensors"))
            let full = try ClassifierModel(backend: try Self.backend(ckpt.layout, ckpt.parameters), parameters: ckpt.parameters,
                                           pooling: ckpt.settings.pooling, trainable: .all)
            let test = try ClassificationDataset.load(from: prepared).test
            let logits = try full.logits(rows: Array(0..<test.rowCount), of: DataSplit(name: "test", rows: test))
            let csv = try CSV.parse(String(decoding: withFile.predictions, as: UTF8.self), source: "predictions")
            for (i, l) in logits.enumerated() { XCTAssertEqual(Double(softmax(l)[1]), Double(csv[i + 1][6])!, accuracy: 2e-6, label) }

            // A damaged file is not used: evaluate says why and recomputes.
            var bytes = try Data(contentsOf: aside)
            try bytes.prefix(bytes.count - 4).write(to: trunkURL)
            let damaged = try evaluate("eval-damaged")
            XCTAssertTrue(damaged.result.frozenTrunk.contains("truncated or damaged"), damaged.result.frozenTrunk)
            XCTAssertEqual(damaged.metrics, withFile.metrics)
            bytes.replaceSubrange(8..<12, with: [9, 0, 0, 0])
            try bytes.write(to: trunkURL)
            XCTAssertTrue(try evaluate("eval-version").result.frozenTrunk.contains("format version 9"))
            try FileManager.default.removeItem(at: trunkURL)
            try FileManager.default.moveItem(at: aside, to: trunkURL)
        }

        // States of other base weights (another seed) are refused.
        var other = options(prepared)
        other.settings.seed = 7
        other.output = dir.appendingPathComponent("train-seed7")
        _ = try ClassifierTrainStage.run(other, makeBackend: Self.backend)
        _ = try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)
        try FileManager.default.removeItem(at: trunkURL)
        try FileManager.default.copyItem(at: other.output.appendingPathComponent("trunk.bin"), to: trunkURL)
        let foreign = try evaluate("eval-foreign")
        XCTAssertTrue(foreign.result.frozenTrunk.contains("frozen weights differ from those the states were computed with (random seed 7)"),
                      foreign.result.frozenTrunk)
    }

    /// States that would not fit the memory budget are not cached: the frozen layers run for
    /// every batch, with the same losses (to float rounding) and no trunk.bin; evaluate does the same.
    func testFrozenStatesOverTheMemoryBudgetAreRecomputedPerBatch() throws {
        let prepared = try writePrepared()
        let cached = try ClassifierTrainStage.run(Self.options(prepared, in: dir.appendingPathComponent("cached")), makeBackend: Self.backend)
        var o = options(prepared)
        o.settings.frozenMemoryBudget = 1024
        var notes: [String] = []
        let recomputed = try ClassifierTrainStage.run(o, makeBackend: Self.backend, progress: {
            if case .note(let text) = $0 { notes.append(text) }
        })
        XCTAssertTrue(notes.contains { $0.contains("would take") && $0.contains("over the memory budget of 1.0 KiB") }, "\(notes)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: o.output.appendingPathComponent(TrunkStatesFile.fileName).path))
        for (a, b) in zip(cached.outcome.log, recomputed.outcome.log) {
            XCTAssertEqual(a.trainLoss ?? 0, b.trainLoss ?? 0, accuracy: 1e-5)
            XCTAssertEqual(a.valLoss ?? 0, b.valLoss ?? 0, accuracy: 1e-5)
        }
        var eo = ClassifierEvaluateOptions(model: o.output, prepared: prepared, output: dir.appendingPathComponent("eval-budget"))
        eo.pngConverter = "no-such-converter-for-tests"
        eo.frozenMemoryBudget = 1024
        let evaluated = try ClassifierEvaluateStage.run(eo, makeBackend: Self.backend)
        XCTAssertTrue(evaluated.frozenTrunk.hasPrefix("none (the frozen-layer states of 33 rows would take"), evaluated.frozenTrunk)
    }

    /// The frozen-layer states are written as soon as the pass ends: a run stopped at any step
    /// (Ctrl-C or kill -9) and rerun reads them back instead of running the pass again, with the
    /// same result as a run that was never stopped.
    func testAStoppedRunsFrozenStatesAreReadBackByTheRerun() throws {
        let prepared = try writePrepared()
        var o = options(prepared, epochs: 3)
        o.stopAfterSteps = 4
        _ = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        let trunkURL = o.output.appendingPathComponent(TrunkStatesFile.fileName)
        let trunk = try Data(contentsOf: trunkURL)

        var notes: [String] = []
        o.stopAfterSteps = nil
        o.resume = .required
        let resumed = try ClassifierTrainStage.run(o, makeBackend: Self.backend, progress: {
            if case .note(let text) = $0 { notes.append(text) }
        })
        XCTAssertTrue(notes.contains { $0.hasPrefix("frozen-layer states of 33 rows read from \(trunkURL.path)") }, "\(notes)")
        XCTAssertFalse(notes.contains { $0.hasPrefix("running the frozen layers") }, "\(notes)")
        XCTAssertEqual(try Data(contentsOf: trunkURL), trunk)

        let whole = try ClassifierTrainStage.run(Self.options(prepared, in: dir.appendingPathComponent("whole"), epochs: 3),
                                                 makeBackend: Self.backend)
        XCTAssertEqual(resumed.outcome.log.map(\.trainLoss), whole.outcome.log.map(\.trainLoss))
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("whole/train").appendingPathComponent(TrunkStatesFile.fileName)), trunk)
    }

    func testInterruptedRunKeepsThePreviousModelAndResumesExactly() throws {
        let prepared = try writePrepared()
        let first = try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)
        let modelURL = dir.appendingPathComponent("train/model.safetensors")
        let before = try Data(contentsOf: modelURL)

        var o = options(prepared, epochs: 3)
        o.stopAfterSteps = 7
        let stopped = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        XCTAssertTrue(stopped.outcome.interrupted)
        XCTAssertNil(stopped.manifest)
        XCTAssertEqual(try Data(contentsOf: modelURL), before, "an interrupted run must not touch the previous model")

        o.stopAfterSteps = nil
        o.resume = .required
        let resumed = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        let resumedModel = try Data(contentsOf: modelURL)
        let whole = try ClassifierTrainStage.run(options(prepared, epochs: 3), makeBackend: Self.backend)
        XCTAssertEqual(try Data(contentsOf: modelURL).count, resumedModel.count)
        XCTAssertEqual(try loadCheckpoint(from: modelURL).params, try { () throws -> [Float] in
            try resumedModel.write(to: dir.appendingPathComponent("resumed.safetensors"))
            return try loadCheckpoint(from: dir.appendingPathComponent("resumed.safetensors")).params
        }())
        XCTAssertEqual(resumed.outcome.log.map(\.trainLoss), whole.outcome.log.map(\.trainLoss))
        XCTAssertNotEqual(first.outcome.log.count, whole.outcome.log.count)

        // Other params than the state's: refused.
        var other = options(prepared, epochs: 3)
        other.resume = .required
        other.settings.seed = 99
        XCTAssertThrowsError(try ClassifierTrainStage.run(other, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("different train params"), "\($0)")
        }
    }

    /// `--continue-interrupted` (pipeline.yaml's train command): continues a state an interrupted
    /// run with the same params left, starts over after a finished run or with other params.
    func testContinueInterruptedContinuesOnlyAnInterruptedRunOfTheSameParams() throws {
        let prepared = try writePrepared()
        let whole = try ClassifierTrainStage.run(options(prepared, epochs: 2), makeBackend: Self.backend)
        let wholeLosses = whole.outcome.log.map(\.trainLoss)

        // A finished run's state: trained again from the start, same result.
        var o = options(prepared, epochs: 2)
        o.resume = .ifInterrupted
        let again = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        XCTAssertEqual(again.outcome.log.map(\.trainLoss), wholeLosses)
        XCTAssertEqual(again.outcome.steps, whole.outcome.steps)

        // Interrupted, then continued: equals the uninterrupted run.
        o.stopAfterSteps = 3
        o.resume = .never
        XCTAssertTrue(try ClassifierTrainStage.run(o, makeBackend: Self.backend).outcome.interrupted)
        o.stopAfterSteps = nil
        o.resume = .ifInterrupted
        let continued = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        XCTAssertFalse(continued.outcome.interrupted)
        XCTAssertEqual(continued.outcome.log.map(\.trainLoss), wholeLosses)

        // Interrupted, then run with other params: starts over instead of failing.
        o.stopAfterSteps = 3
        o.resume = .never
        _ = try ClassifierTrainStage.run(o, makeBackend: Self.backend)
        var other = options(prepared, epochs: 2)
        other.settings.seed = 99
        other.resume = .ifInterrupted
        let fresh = try ClassifierTrainStage.run(other, makeBackend: Self.backend)
        var reference = options(prepared, epochs: 2)
        reference.settings.seed = 99
        XCTAssertEqual(fresh.outcome.log.map(\.trainLoss), try ClassifierTrainStage.run(reference, makeBackend: Self.backend).outcome.log.map(\.trainLoss))
    }

    func testBadInputsAreClearErrors() throws {
        let prepared = try writePrepared()
        var o = options(prepared)
        o.numClasses = 3
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("--num-classes 3, but the shards hold labels of 2 classes"), "\($0)")
        }
        o = options(prepared)
        o.config = GPT2Config(name: "small-vocab", vocabSize: 30, contextLength: 16, embDim: 16, nHeads: 2, nLayers: 2)
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("outside small-vocab's vocabulary"), "\($0)")
        }
        o = options(prepared)
        o.config = GPT2Config(name: "short", vocabSize: 40, contextLength: 4, embDim: 16, nHeads: 2, nLayers: 2)
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("more than short's context of 4"), "\($0)")
        }
        o = options(prepared)
        o.settings.weights = .pretrained
        o.settings.weightsFile = dir.appendingPathComponent("missing.safetensors").path
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("pretrained weights file is missing") && "\($0)".contains("--weights random"), "\($0)")
        }
        o = options(prepared)
        o.resume = .required
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) { XCTAssertTrue("\($0)".contains("no resume state")) }

        // Tokenizer files that differ from the ones in the shards' manifest.
        o = options(prepared)
        let otherVocab = dir.appendingPathComponent("other-vocab")
        try FileManager.default.createDirectory(at: otherVocab, withIntermediateDirectories: true)
        try Data("{\"b\": 0}".utf8).write(to: otherVocab.appendingPathComponent("encoder.json"))
        try Data("#version: 0.2\n".utf8).write(to: otherVocab.appendingPathComponent("vocab.bpe"))
        o.vocabDirectory = otherVocab
        XCTAssertThrowsError(try ClassifierTrainStage.run(o, makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("encoder.json differs from the one the data was tokenized with"), "\($0)")
        }
        o.vocabDirectory = dir.appendingPathComponent("vocab")
        XCTAssertNoThrow(try ClassificationDataset.load(from: prepared).checkTokenizer(vocabDirectory: o.vocabDirectory!))

        // Nothing was written by the failed runs.
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("train/model.safetensors").path))
    }

    func testShardsOfAnotherFormatVersionAreRefused() throws {
        let prepared = try writePrepared(shardVersion: 99)
        XCTAssertThrowsError(try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("format version 99") && "\($0)".contains("prepare"), "\($0)")
        }
    }

    func testChangedShardIsRefused() throws {
        let prepared = try writePrepared()
        let bin = prepared.appendingPathComponent("train.bin")
        var data = try Data(contentsOf: bin)
        data[36] ^= 1   // a token id: still a valid shard, but not the one prepare wrote
        try data.write(to: bin)
        XCTAssertThrowsError(try ClassifierTrainStage.run(options(prepared), makeBackend: Self.backend)) {
            XCTAssertTrue("\($0)".contains("does not match the sha256 in manifest.json"), "\($0)")
        }
    }
}

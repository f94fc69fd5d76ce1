import ArtifactKit
import Foundation
import GPT2Weights
import GPT2
import GPT2Tokenizer
import TestSupport
import TrainingKit
import Instruct
import XCTest

final class InstructEvaluateTests: XCTestCase {
    var dir: URL!
    var prepared: URL!
    var trained: URL!

    /// train instruct (tiny model, 2 steps) -> checkpoint, the input of every test here.
    override func setUpWithError() throws {
        dir = try TestPaths.makeTempDir("ieval")
        prepared = try TinyInstruct.prepare(into: dir)
        trained = dir.appendingPathComponent("train")
        var s = TinyInstruct.settings()
        s.maxSteps = 2
        _ = try InstructTrainStage.run(TinyInstruct.options(prepared, trained, s))
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func options(_ out: String) throws -> InstructEvaluateOptions {
        var o = InstructEvaluateOptions(model: trained, prepared: prepared, output: dir.appendingPathComponent(out),
                                        vocabDirectory: try TinyInstruct.vocab())
        o.maxNewTokens = 12
        return o
    }

    func testEvaluateWritesTheBooksResponseFileAndMetrics() throws {
        let o = try options("eval")
        let r = try InstructEvaluateStage.run(o)
        let out = o.output
        // The book's instruction-data-with-response.json: the test entries plus model_response.
        let data = try Data(contentsOf: out.appendingPathComponent("instruction-data-with-response.json"))
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: String]])
        let test = try InstructionDataset(directory: prepared).entries(.test)
        XCTAssertEqual(list.count, 3)
        XCTAssertEqual(list.count, test.count)
        for (i, e) in list.enumerated() {
            XCTAssertEqual(Set(e.keys), ["instruction", "input", "output", "model_response"])
            XCTAssertEqual(e["instruction"], test[i].exchanges[0].instruction)
            XCTAssertEqual(e["output"], test[i].reference)
            XCTAssertEqual(e["model_response"], r.responses[i])
        }
        XCTAssertTrue(String(decoding: data, as: UTF8.self).hasPrefix("[\n    {\n        \"instruction\": "))

        // The losses are the book's calc_loss_loader over all batches, recomputed here independently.
        let ckpt = try loadCheckpoint(from: trained.appendingPathComponent("model.safetensors"))
        let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
        let shard = try InstructionDataset(directory: prepared).shard(.test)
        let b = collateInstructionBatch(shard, indices: [0, 1, 2], allowedMaxLength: 96)
        let want = Double(try model.loss(tokens: b.inputs, batch: 3, seqLen: b.seqLen, objective: .languageModel(targets: b.targets)))
        let metrics = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: out.appendingPathComponent("metrics.json")))
        XCTAssertEqual(metrics["test"]?["loss"]?.doubleValue ?? 0, want, accuracy: 1e-6)
        XCTAssertEqual(metrics["test"]?["perplexity"]?.doubleValue ?? 0, exp(want), accuracy: 1e-3)
        XCTAssertNotNil(metrics["validation"]?["loss"]?.doubleValue)
        XCTAssertEqual(metrics["judge"]?["status"], "off")
        XCTAssertEqual(metrics["generation"]?["responses"], 3)
        XCTAssertNotNil(metrics["generation"]?["tokens_per_second"]?.doubleValue)
        let f1 = r.scores.map(\.tokenF1).reduce(0, +) / 3
        XCTAssertEqual(metrics["overlap"]?["token_f1_mean"]?.doubleValue ?? -1, f1, accuracy: 1e-12)
        for (i, s) in r.scores.enumerated() {
            XCTAssertEqual(s.tokenF1, OverlapScore.tokenF1(response: r.responses[i], reference: test[i].reference))
        }
        let scoreLines = try String(contentsOf: out.appendingPathComponent("scores.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(scoreLines.count, 3)
        let manifest = try Manifest.read(from: out.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest.format, "instruct-evaluation")
        XCTAssertTrue(manifest.outputs.map(\.path).contains("loss.svg"))
    }

    /// The responses equal the book's uncached one-prompt-at-a-time loop, whatever the generation batch.
    func testResponsesEqualUncachedGenerationAndDoNotDependOnBatching() throws {
        var o = try options("b3")
        o.generationBatch = 3
        o.maxNewTokens = 20
        let batched = try InstructEvaluateStage.run(o)
        o.generationBatch = 1
        o.output = dir.appendingPathComponent("b1")
        XCTAssertEqual(try InstructEvaluateStage.run(o).responses, batched.responses)

        let ckpt = try loadCheckpoint(from: trained.appendingPathComponent("model.safetensors"))
        let model = try GPT2Model(layout: ckpt.layout, params: ckpt.params)
        let tok = try GPT2BPETokenizer(directory: try TinyInstruct.vocab())
        let entries = try InstructionDataset(directory: prepared).entries(.test)
        for (i, e) in entries.enumerated() {
            let prompt = formatPrompt(e)
            let ids = tok.encodeOrdinary(prompt).map(Int32.init)
            let new = try model.generateUncached(prompts: [ids], options: GenerationOptions(maxNewTokens: 20, eosId: 50256))[0]
            let text = try tok.decode((ids + new).map(Int.init))
            XCTAssertEqual(batched.responses[i], extractResponse(generatedText: text, promptText: prompt, marker: "### Response:"))
            XCTAssertEqual(batched.scores[i].newTokens, new.count)
        }
    }

    func testJudgeScoresFromTheStub() throws {
        let stub = try JudgeStub(mode: "good")
        var o = try options("judged")
        o.judge = JudgeOptions(url: stub.url, model: "stub-model")
        let r = try InstructEvaluateStage.run(o)
        XCTAssertNil(r.judgeProblem)
        let want = r.responses.map { $0.unicodeScalars.count % 101 }  // Python len
        XCTAssertEqual(r.scores.map(\.judgeScore), want)
        XCTAssertEqual(r.metrics["judge"]?["status"], "ok")
        XCTAssertEqual(r.metrics["judge"]?["mean"]?.doubleValue ?? -1, Double(want.reduce(0, +)) / 3, accuracy: 1e-12)
        XCTAssertEqual(try stub.requests().count, 3)
        XCTAssertEqual(try stub.requests().first?["body"]?["model"], "stub-model")
    }

    func testGarbageJudgeRepliesAreCountedNotScored() throws {
        let stub = try JudgeStub(mode: "garbage")
        var o = try options("garbage")
        o.judge = JudgeOptions(url: stub.url)
        let r = try InstructEvaluateStage.run(o)
        XCTAssertEqual(r.metrics["judge"]?["status"], "ok")
        XCTAssertEqual(r.metrics["judge"]?["unparsed"], 3)
        XCTAssertEqual(r.metrics["judge"]?["mean"], .null)
        XCTAssertEqual(r.scores.compactMap(\.judgeReply), Array(repeating: "That response is quite good!", count: 3))
    }

    func testUnreachableJudgeStillWritesEverythingElse() throws {
        var o = try options("nojudge")
        var j = JudgeOptions(url: "http://127.0.0.1:\(unusedLocalPort())")
        j.connectTimeoutSeconds = 2
        o.judge = j
        let r = try InstructEvaluateStage.run(o)
        XCTAssertTrue(r.judgeProblem?.contains("judge unavailable: cannot reach") ?? false, r.judgeProblem ?? "nil")
        let metrics = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: o.output.appendingPathComponent("metrics.json")))
        XCTAssertEqual(metrics["judge"]?["status"], "unavailable")
        XCTAssertNotNil(metrics["test"]?["loss"]?.doubleValue)
        for f in ["instruction-data-with-response.json", "scores.jsonl", "manifest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: o.output.appendingPathComponent(f).path), f)
        }
    }

    func testClassifierCheckpointAndMissingModelAreClearErrors() throws {
        var o = try options("x")
        o.model = dir.appendingPathComponent("nothing")
        XCTAssertThrowsError(try InstructEvaluateStage.run(o)) { XCTAssertTrue("\($0)".contains("run `train instruct` first"), "\($0)") }
        let layout = ParameterLayout(config: TinyInstruct.config, head: .classifier(numClasses: 2))
        let cls = dir.appendingPathComponent("cls")
        try FileManager.default.createDirectory(at: cls, withIntermediateDirectories: true)
        try saveCheckpoint(params: randomWeights(layout: layout, seed: 1), layout: layout, metadata: [:],
                           to: cls.appendingPathComponent("model.safetensors"))
        o.model = cls
        XCTAssertThrowsError(try InstructEvaluateStage.run(o)) { XCTAssertTrue("\($0)".contains("classification head"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: o.output.path))
    }
}

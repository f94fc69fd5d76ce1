import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Weights
import GGUF
import ModelExport
import TestSupport
import XCTest

/// What `export --to hf` refuses, and how: every refusal is a PipelineError that names the
/// file or setting, and leaves no output behind.
final class HFExportBadInputTests: ExportTestCase {

    func options(_ run: URL, _ dest: String = "out") -> HFExportOptions {
        HFExportOptions(model: run, destination: root.appendingPathComponent(dest), vocabDirectory: ExportTestRuns.vocabulary!)
    }

    func assertRefused(_ o: HFExportOptions, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try HFExport.run(o), file: file, line: line) { error in
            guard let e = error as? PipelineError else { return XCTFail("not a PipelineError: \(error)", file: file, line: line) }
            for w in words { XCTAssertTrue(e.description.contains(w), "\"\(w)\" missing from: \(e)", file: file, line: line) }
        }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: root.path))?.filter { $0.contains("export-") } ?? []
        XCTAssertEqual(leftovers, [], "staging folders left behind", file: file, line: line)
    }

    func testAFolderThatIsNotATrainOutputIsRefused() throws {
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertRefused(options(empty), mentions: ["manifest.json is missing", "train instruct"])
        assertRefused(options(root.appendingPathComponent("absent")), mentions: ["no such training output folder"])

        let prepared = root.appendingPathComponent("prepared")
        try FileManager.default.createDirectory(at: prepared, withIntermediateDirectories: true)
        try Manifest(format: "classification-shards", formatVersion: 1, tool: "prepare classification").write(into: prepared)
        assertRefused(options(prepared), mentions: ["classification-shards", "prepare classification"])

        let unfinished = root.appendingPathComponent("unfinished")
        try ExportTestRuns.writeInstructRun(to: unfinished, lora: false)
        try FileManager.default.removeItem(at: unfinished.appendingPathComponent("model.safetensors"))
        assertRefused(options(unfinished), mentions: ["model.safetensors is missing", "train instruct"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("out").path))
    }

    func testBestCheckpointMustExist() throws {
        let run = root.appendingPathComponent("run")
        try ExportTestRuns.writeInstructRun(to: run, lora: false)
        var o = options(run)
        o.checkpoint = .best
        assertRefused(o, mentions: ["best/model.safetensors is missing", "--save-best"])
        try FileManager.default.createDirectory(at: run.appendingPathComponent("best"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: run.appendingPathComponent("model.safetensors"), to: run.appendingPathComponent("best/model.safetensors"))
        let m = try HFExport.run(o)
        XCTAssertEqual(m.params["checkpoint"], "best")
        XCTAssertEqual(m.inputs.first?.path, run.appendingPathComponent("best/model.safetensors").path)
    }

    func testClassifierSettingsTheTargetCannotExpressAreRefused() throws {
        let first = root.appendingPathComponent("first")
        try ExportTestRuns.writeClassifierRun(to: first, position: .first)
        assertRefused(options(first), mentions: ["token_position first", "GPT2ForSequenceClassification"])
        let average = root.appendingPathComponent("average")
        try ExportTestRuns.writeClassifierRun(to: average, position: .flexible, average: true)
        assertRefused(options(average), mentions: ["average_embeddings true"])
    }

    /// A head whose rows are equal cannot absorb a bias that differs between classes.
    func testABiasThatCannotBeFoldedIsRefused() throws {
        let run = root.appendingPathComponent("run")
        try ExportTestRuns.writeClassifierRun(to: run, position: .last)
        let url = run.appendingPathComponent("model.safetensors")
        let c = try loadCheckpoint(from: url)
        var params = c.params
        let w = c.layout.spec(named: "out_head.weight")!
        for i in 0..<16 { params[w.offset + 16 + i] = params[w.offset + i] }
        try saveCheckpoint(params: params, layout: c.layout, metadata: c.metadata.filter { !["format", "format_version", "config", "head", "params_sha256", "param_count"].contains($0.key) }, to: url)
        assertRefused(options(run), mentions: ["out_head.bias", "not independent"])
    }

    func testAModelWithASmallerVocabularyThanTheTokenizerIsRefused() throws {
        let run = root.appendingPathComponent("run")
        var config = ExportTestRuns.config
        config.vocabSize = 100
        let layout = ParameterLayout(config: config, head: .languageModel)
        try saveCheckpoint(params: ExportTestRuns.noisyParameters(layout, seed: 1), layout: layout, metadata: [:],
                           to: run.appendingPathComponent("model.safetensors"))
        try Manifest(format: "instruct-training", formatVersion: 1, tool: "train instruct").write(into: run)
        assertRefused(options(run), mentions: ["vocab_size 100", "50257"])
    }

    func testAnExistingDestinationIsRefusedWithoutForceAndReplacedWithIt() throws {
        let run = root.appendingPathComponent("run")
        try ExportTestRuns.writeInstructRun(to: run, lora: false)
        let dest = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: dest.appendingPathComponent("notes.txt"))
        assertRefused(options(run), mentions: ["already exists", "--force"])
        XCTAssertEqual(try String(contentsOf: dest.appendingPathComponent("notes.txt"), encoding: .utf8), "mine")

        var o = options(run)
        o.force = true
        let m = try HFExport.run(o)
        let files = try FileManager.default.contentsOfDirectory(atPath: dest.path).sorted()
        XCTAssertEqual(files, ["config.json", "generation_config.json", "manifest.json", "merges.txt", "model.safetensors",
                               "special_tokens_map.json", "tokenizer_config.json", "vocab.json"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted(), ["out", "run"], "no staging or old folder left")
        for record in m.outputs {
            XCTAssertEqual(try FileHash.sha256(of: dest.appendingPathComponent(record.path)), record.sha256, record.path)
        }
    }

    func testTheCommandLine() throws {
        let run = root.appendingPathComponent("run")
        try ExportTestRuns.writeInstructRun(to: run, lora: true)
        let vocab = ExportTestRuns.vocabulary!.path
        let ok = try runTool("export", ["--model", run.path, "--to", "hf", "adapter", "--vocab", vocab], cwd: root)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("LoRA peft-adapter"), ok.stdout)
        let config = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: root.appendingPathComponent("adapter/adapter_config.json")))
        XCTAssertEqual(config["base_model_name_or_path"], "adapter/base")
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("adapter/base/model.safetensors").path))
        let again = try runTool("export", ["--model", run.path, "--to", "hf", "adapter", "--vocab", vocab], cwd: root)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
    }

    /// `--to gguf`: a FILE.gguf gets a Modelfile beside it (a second export there is refused
    /// without --force); a folder gets model.gguf, Modelfile and a manifest; a classifier is refused.
    func testGGUFFromTheCommandLine() throws {
        let run = root.appendingPathComponent("run"), vocab = ExportTestRuns.vocabulary!.path
        try ExportTestRuns.writeInstructRun(to: run, lora: true)
        let file = try runTool("export", ["--model", run.path, "--to", "gguf", "m.gguf", "--type", "q8_0", "--vocab", vocab], cwd: root)
        XCTAssertEqual(file.status, 0, file.stderr)
        let gguf = try GGUFFile(contentsOf: root.appendingPathComponent("m.gguf"))
        XCTAssertGreaterThanOrEqual(gguf.tensors.count, 2 + 2 * 12 + 2)   // embeddings, 12 per block, final norm (+ an untied head)
        let modelfile = try String(contentsOf: root.appendingPathComponent("Modelfile"), encoding: .utf8)
        XCTAssertTrue(modelfile.hasPrefix("FROM ./m.gguf"), modelfile)
        XCTAssertTrue(modelfile.contains("### Response:"), modelfile)
        let again = try runTool("export", ["--model", run.path, "--to", "gguf", "n.gguf", "--vocab", vocab], cwd: root)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("a Modelfile already exists"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("n.gguf").path))

        let folder = try runTool("export", ["--model", run.path, "--to", "gguf", "folder", "--vocab", vocab], cwd: root)
        XCTAssertEqual(folder.status, 0, folder.stderr)
        let manifest = try Manifest.read(from: root.appendingPathComponent("folder/manifest.json"))
        XCTAssertEqual(manifest.outputs.map(\.path).sorted(), ["Modelfile", "model.gguf"])
        XCTAssertEqual(manifest.params["type"], "f32")

        let classifier = root.appendingPathComponent("cls")
        try ExportTestRuns.writeClassifierRun(to: classifier, position: .last)
        let refused = try runTool("export", ["--model", classifier.path, "--to", "gguf", "c.gguf", "--vocab", vocab], cwd: root)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("no classification head"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("c.gguf").path))
    }
}

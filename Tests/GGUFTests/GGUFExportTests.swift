import ArtifactKit
import Foundation
import GGUF
import GPT2
import GPT2Weights
import Instruct
import TestSupport
import XCTest

final class GGUFExportTests: XCTestCase {
    var dir: URL!

    /// Every export reads the GPT-2 vocabulary: without the shared assets these tests skip here
    /// (a skip thrown inside an expected-error closure would count as the error).
    override func setUpWithError() throws {
        guard TinyGGUFModel.vocabularyDirectory != nil else { throw XCTSkip("the GPT-2 vocabulary (shared assets) is absent") }
        dir = try TestPaths.makeTempDir("gguf-export")
    }
    override func tearDownWithError() throws { if let dir { try? FileManager.default.removeItem(at: dir) } }

    func export(params: [Float]? = nil, type: GGUFType = .f32, to name: String = "m.gguf", force: Bool = false) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try GGUFExport.write(layout: TinyGGUFModel.layout, params: params ?? TinyGGUFModel.params, lora: nil, source: "test",
                             vocabulary: try TinyGGUFModel.vocabulary(), type: type, to: url, force: force)
        return url
    }

    func assertError(_ body: @autoclosure () throws -> Any, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    // MARK: Bad input

    func testClassifierCheckpointIsRefused() throws {
        let config = GPT2Config(name: "tiny-cls", vocabSize: 50257, contextLength: 16, embDim: 32, nHeads: 2, nLayers: 1)
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))
        let checkpoint = dir.appendingPathComponent("cls.safetensors")
        try saveCheckpoint(params: randomWeights(layout: layout, seed: 1), layout: layout, metadata: [:], to: checkpoint)
        let out = dir.appendingPathComponent("cls.gguf")
        assertError(try GGUFExport.write(checkpoint: checkpoint, vocabulary: dir, type: .f32, to: out), contains: "classifier checkpoint (2 classes)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testUnknownTypeListsTheChoices() {
        assertError(try GGUFType.parse("q4_0"), contains: "unknown GGUF type \"q4_0\"")
        assertError(try GGUFType.parse("bf16"), contains: "f32, f16, q8_0")
        XCTAssertEqual(try GGUFType.parse("Q8_0"), .q8_0)
    }

    func testExistingDestinationIsKeptUnlessForced() throws {
        let url = dir.appendingPathComponent("m.gguf")
        try Data("keep me".utf8).write(to: url)
        assertError(try export(), contains: "already exists")
        XCTAssertEqual(try Data(contentsOf: url), Data("keep me".utf8))
        _ = try export(force: true)
        XCTAssertEqual(try GGUFFile(contentsOf: url).tensors.count, 2 + 12 * 2 + 2)
        assertError(try export(to: ".", force: true), contains: "is a directory")
    }

    func testNonFiniteWeightsAreRefusedAndNothingIsWritten() throws {
        var params = TinyGGUFModel.params
        let spec = TinyGGUFModel.layout.spec(named: "h.1.mlp.c_fc.weight")!
        params[spec.offset + 5] = .nan
        assertError(try export(params: params), contains: "tensor h.1.mlp.c_fc.weight holds a non-finite value")
        params[spec.offset + 5] = 1e6
        assertError(try export(params: params, type: .f16), contains: "which f16 cannot represent")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(left, [], "no file and no temporary file may be left behind")
    }

    func testTruncatedFileIsReportedAsTruncated() throws {
        let url = try export(type: .q8_0)
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 100).write(to: url)
        assertError(try GGUFFile(contentsOf: url), contains: "truncated")
        try Data("GGML....".utf8).write(to: url)
        assertError(try GGUFFile(contentsOf: url), contains: "not a GGUF file")
    }

    // MARK: What is inside

    /// The tensors read back are our weights, transposed where ggml wants [in, out] rows;
    /// F16 within half precision, Q8_0 within half a quantization step of each block.
    func testTensorsReadBackAsOurWeights() throws {
        let layout = TinyGGUFModel.layout, params = TinyGGUFModel.params
        let C = layout.config.embDim
        let cAttn = Array(params[layout.spec(named: "h.0.attn.c_attn.weight")!.range])   // [C, 3C]
        for type in GGUFType.allCases {
            let f = try GGUFFile(contentsOf: try export(type: type, to: "\(type).gguf"))
            let qkv = try XCTUnwrap(f.info("blk.0.attn_qkv.weight"))
            XCTAssertEqual(qkv.dims, [C, 3 * C])
            XCTAssertEqual(qkv.type, type.matrixType)
            XCTAssertEqual(f.info("blk.0.attn_qkv.bias")?.type, .f32)
            XCTAssertEqual(f.info("position_embd.weight")?.type, .f32)
            XCTAssertNil(f.info("output.weight"), "a tied head is not written: llama.cpp falls back to token_embd")
            let back = try f.floats(of: "blk.0.attn_qkv.weight")
            var worst: Float = 0
            for o in 0..<(3 * C) { for i in 0..<C { worst = max(worst, abs(back[o * C + i] - cAttn[i * 3 * C + o])) } }
            let bound: Float = type == .f32 ? 0 : type == .f16 ? 1e-3 : cAttn.map(abs).max()! / 127
            XCTAssertLessThanOrEqual(worst, bound, "\(type)")
            XCTAssertEqual(f.value("general.architecture"), .string("gpt2"))
            XCTAssertEqual(f.value("general.file_type")?.integer, Int(type.fileType))
            XCTAssertEqual(f.value("gpt2.attention.head_count")?.integer, 4)
            XCTAssertEqual(f.value("gpt2.feed_forward_length")?.integer, 4 * C)
        }
    }

    /// The LoRA checkpoint on disk exports to the same bytes as the in-memory model, and its
    /// output.weight is wte + alpha A B of the lm_head adapter (computed here naively).
    func testLoRACheckpointUntiesTheHead() throws {
        let layout = TinyGGUFModel.layout, lora = TinyGGUFModel.lora
        let checkpoint = dir.appendingPathComponent("lora.safetensors")
        try saveCheckpoint(params: TinyGGUFModel.params, layout: layout, metadata: [:], to: checkpoint, lora: lora)
        let url = dir.appendingPathComponent("lora.gguf")
        let summary = try GGUFExport.write(checkpoint: checkpoint, vocabulary: try XCTUnwrap(TinyGGUFModel.vocabularyDirectory),
                                           type: .f32, to: url)
        XCTAssertTrue(summary.untiedHead)
        XCTAssertEqual(summary.mergedLoRA, lora.settings)
        XCTAssertEqual(summary.tensorsByType, ["F32": 29])
        let head = try GGUFFile(contentsOf: url).floats(of: "output.weight")
        let s = try XCTUnwrap(lora.layout.adapters.first { $0.linear == "lm_head" })
        let wte = layout.spec(named: "wte.weight")!
        for v in [0, 123, 50256] {
            for c in [0, 17, 63] {
                var delta: Float = 0
                for k in 0..<s.rank { delta += lora.values[s.aOffset + c * s.rank + k] * lora.values[s.bOffset + k * s.outDim + v] }
                let want = TinyGGUFModel.params[wte.offset + v * 64 + c] + lora.settings.alpha * delta
                XCTAssertEqual(head[v * 64 + c], want, accuracy: 1e-5 * max(1, abs(want)))
            }
        }
    }

    /// Q8_0 needs rows of a multiple of 32: a 48-wide model keeps such matrices in F16, as
    /// llama.cpp's converter does.
    func testQ8_0FallsBackToF16ForRowsNotAMultipleOf32() {
        XCTAssertEqual(GPT2GGUF.storageType(name: "blk.0.ffn_up.weight", dims: [48, 192], requested: .q8_0), .f16)
        XCTAssertEqual(GPT2GGUF.storageType(name: "blk.0.ffn_up.weight", dims: [64, 256], requested: .q8_0), .q8_0)
        XCTAssertEqual(GPT2GGUF.storageType(name: "blk.0.ffn_up.bias", dims: [256], requested: .q8_0), .f32)
    }

    func testVocabularyMetadata() throws {
        let v = try TinyGGUFModel.vocabulary()
        XCTAssertEqual(v.tokens.count, 50257)
        XCTAssertEqual(v.merges.count, 50000)
        XCTAssertEqual(v.merges.first, "Ġ t")
        XCTAssertEqual(v.tokens[50256], "<|endoftext|>")
        XCTAssertEqual(v.tokenTypes[50256], 3)
        XCTAssertEqual(Set(v.tokenTypes[..<50256]), [1])
    }

    // MARK: Inspector and Modelfile

    func testInspectorShowsHeaderMetadataAndTensors() throws {
        let url = try export(type: .q8_0)
        let renamed = dir.appendingPathComponent("model.bin")
        try FileManager.default.moveItem(at: url, to: renamed)
        let inspector = GGUFInspector()
        XCTAssertTrue(inspector.canInspect(url: renamed, magic: nil), "recognised by its magic without the extension")
        let text = try inspector.inspect(url: renamed, rows: 3)
        for needle in ["GGUF v3, 20 metadata pairs, 28 tensors, alignment 32", "general.architecture", "\"gpt2\"",
                       "tokenizer.ggml.tokens", "[string x 50257] \"!\", \"\\\"\", \"#\", ...",
                       "blk.1.ffn_down.weight", "Q8_0", "[256, 64]"] {
            XCTAssertTrue(text.contains(needle), "missing \(needle) in\n\(text)")
        }
    }

    func testModelfilesCarryTheTrainingTemplate() throws {
        let alpaca = OllamaModelfile(ggufFileName: "model.gguf", template: PromptStyle.alpaca.ollamaTemplate,
                                     stops: PromptStyle.alpaca.stopSequences)
        XCTAssertEqual(try alpaca.render(), """
            FROM ./model.gguf
            TEMPLATE \"\"\"\(alpacaPreamble)

            ### Instruction:
            {{ .Prompt }}

            ### Response:
            \"\"\"
            PARAMETER stop "<|endoftext|>"
            PARAMETER stop "### Instruction:"

            """)
        XCTAssertEqual(PromptStyle.phi3.ollamaTemplate, "<|user|>\n{{ .Prompt }}\n<|assistant|>:\n")
        XCTAssertEqual(PromptStyle.chatml.ollamaTemplate, "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n")
        let url = dir.appendingPathComponent("Modelfile")
        try alpaca.write(to: url)
        assertError(try alpaca.write(to: url), contains: "already exists")
        assertError(try OllamaModelfile(ggufFileName: "m.gguf", template: "a\"\"\"b").render(), contains: "cannot quote")
    }
}

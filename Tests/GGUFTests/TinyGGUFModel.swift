import ArtifactKit
import Foundation
import GGUF
import GPT2
import GPT2Tokenizer
import GPT2Weights
import Instruct
import TestSupport
import XCTest

/// The tiny random models of the llama.cpp proof (tools/reference/gguf_parity.py): 2 layers,
/// 64 wide, 4 heads, context 128, but GPT-2's full 50,257-token vocabulary so that llama.cpp's
/// tokenizer works. Deterministic: the Swift tests rebuild exactly the files the script checked.
enum TinyGGUFModel {
    static let config = GPT2Config(name: "gguf-tiny", vocabSize: 50257, contextLength: 128, embDim: 64, nHeads: 4, nLayers: 2)
    static let layout = ParameterLayout(config: config, head: .languageModel)
    static let seed: UInt64 = 20_261_206
    static let maxNewTokens = 16
    static let fixtures = TestPaths.fixtures.appendingPathComponent("gguf")

    /// The prompts: plain text and one of each instruct template.
    static var prompts: [String] {
        let entry = InstructionEntry(instruction: "Name the capital of France.", output: "")
        return ["The quick brown fox", "Every effort moves you", "GGUF files hold tensors and metadata.",
                formatPrompt(entry, style: .alpaca), formatPrompt(entry, style: .phi3)]
    }

    /// The book's initialisation with the blocks' weight matrices scaled by 4: at their
    /// initial size the embeddings dominate the residual stream and a random model with a tied
    /// head mostly repeats its last token, which would make agreement cheap.
    static var params: [Float] {
        var p = randomWeights(layout: layout, seed: seed)
        for spec in layout.tensors where spec.block != nil && spec.shape.count == 2 {
            for i in spec.range { p[i] *= 4 }
        }
        return p
    }

    /// Rank-4 adapters with alpha 2 on every Linear including the tied head, A and B both
    /// non-zero (a fresh adapter has B = 0 and would change nothing).
    static var lora: LoRAWeights {
        let loraLayout = try! LoRALayout(layout: layout, rank: 4)
        var rng = SeededGenerator(seed: seed + 1)
        let values = (0..<loraLayout.totalCount).map { _ in (2 * rng.nextUnitFloat() - 1) * 0.25 }
        return try! LoRAWeights(settings: LoRASettings(rank: 4, alpha: 2), layout: loraLayout, values: values)
    }

    static var vocabularyDirectory: URL? {
        TestPaths.sharedAssets?.appendingPathComponent("gpt2")
    }

    /// The vocabulary, or a skip when the shared assets are absent.
    static func vocabulary() throws -> GGUFVocabulary {
        guard let dir = vocabularyDirectory else { throw XCTSkip("the GPT-2 vocabulary (shared assets) is absent") }
        return try GGUFVocabulary(directory: dir)
    }

    static func tokenizer() throws -> GPT2BPETokenizer {
        guard let dir = vocabularyDirectory else { throw XCTSkip("the GPT-2 vocabulary (shared assets) is absent") }
        return try GPT2BPETokenizer(directory: dir)
    }

    /// The exported file names of the cases: "tiny-f32.gguf", ..., "tiny-lora-f32.gguf", ...
    static let cases: [(file: String, lora: Bool, type: GGUFType)] =
        GGUFType.allCases.map { ("tiny-\($0.rawValue).gguf", false, $0) } + GGUFType.allCases.map { ("tiny-lora-\($0.rawValue).gguf", true, $0) }

    /// Exports one case into `dir` with our exporter.
    static func export(_ c: (file: String, lora: Bool, type: GGUFType), vocabulary: GGUFVocabulary, into dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(c.file)
        try GGUFExport.write(layout: layout, params: params, lora: c.lora ? lora : nil, source: "tiny model",
                             vocabulary: vocabulary, type: c.type, name: "gguf-tiny", to: url)
        return url
    }

    /// Our own greedy continuation (KV-cached generation) of every prompt, with or without LoRA.
    static func greedy(lora withLoRA: Bool, prompts: [[Int32]]) throws -> [[Int32]] {
        let model = try GPT2Model(layout: layout, params: params)
        if withLoRA { try model.attachLoRA(lora) }
        return try model.generate(prompts: prompts, options: GenerationOptions(maxNewTokens: maxNewTokens))
    }
}

/// Writes the inputs of tools/reference/gguf_parity.py when GGUF_PARITY_OUT names a folder:
/// both checkpoints, every GGUF case, and prompts.json (texts, our token ids, our greedy tokens).
final class GGUFParityInputs: XCTestCase {
    func testWriteParityInputs() throws {
        guard let out = ProcessInfo.processInfo.environment["GGUF_PARITY_OUT"] else {
            throw XCTSkip("set GGUF_PARITY_OUT to write the inputs of tools/reference/gguf_parity.py")
        }
        let dir = URL(fileURLWithPath: out)
        let vocabulary = try TinyGGUFModel.vocabulary()
        let tokenizer = try TinyGGUFModel.tokenizer()
        let layout = TinyGGUFModel.layout
        try saveCheckpoint(params: TinyGGUFModel.params, layout: layout, metadata: [:], to: dir.appendingPathComponent("tiny.safetensors"))
        try saveCheckpoint(params: TinyGGUFModel.params, layout: layout, metadata: [:], to: dir.appendingPathComponent("tiny-lora.safetensors"),
                           lora: TinyGGUFModel.lora)
        for c in TinyGGUFModel.cases {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(c.file))
            _ = try TinyGGUFModel.export(c, vocabulary: vocabulary, into: dir)
        }
        let ids = try TinyGGUFModel.prompts.map { try tokenizer.encode($0).map(Int32.init) }
        let record: [String: Any] = [
            "prompts": TinyGGUFModel.prompts,
            "prompt_ids": ids.map { $0.map(Int.init) },
            "max_new_tokens": TinyGGUFModel.maxNewTokens,
            "ours": try TinyGGUFModel.greedy(lora: false, prompts: ids).map { $0.map(Int.init) },
            "ours_lora": try TinyGGUFModel.greedy(lora: true, prompts: ids).map { $0.map(Int.init) },
        ]
        try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]).write(to: dir.appendingPathComponent("prompts.json"))
    }
}

/// With GGUF_PARITY_RUN naming a folder that holds a `train instruct` checkpoint
/// (model.safetensors) and the `evaluate instruct` output beside it
/// (instruction-data-with-response.json, and its manifest as evaluate-manifest.json): exports the
/// checkpoint in every type and writes run.json with the first entries' prompts and our greedy
/// continuation as `evaluate instruct` generates it (64 tokens, stopping at <|endoftext|>),
/// after checking that its first `max_new_tokens` (the evaluation's) decode to exactly the
/// evaluation's responses.
final class GGUFRunParityInputs: XCTestCase {
    struct Entry: Decodable {
        var instruction: String
        var input: String
        var output: String
        var model_response: String
    }

    func testWriteRunParityInputs() throws {
        guard let folder = ProcessInfo.processInfo.environment["GGUF_PARITY_RUN"] else {
            throw XCTSkip("set GGUF_PARITY_RUN to a folder with a train instruct checkpoint (tools/reference/gguf_parity.py)")
        }
        let dir = URL(fileURLWithPath: folder)
        let checkpoint = try loadCheckpointWithLoRA(from: dir.appendingPathComponent("model.safetensors"))
        let style = try XCTUnwrap(PromptStyle(rawValue: checkpoint.metadata["prompt_style"] ?? "alpaca"))
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: dir.appendingPathComponent("instruction-data-with-response.json")))
            .prefix(5)
        let tokenizer = try TinyGGUFModel.tokenizer()
        let vocabulary = try TinyGGUFModel.vocabulary()
        for type in GGUFType.allCases {
            let url = dir.appendingPathComponent("run-\(type.rawValue).gguf")
            try GGUFExport.write(layout: checkpoint.layout, params: checkpoint.params, lora: checkpoint.lora, source: folder,
                                 vocabulary: vocabulary, type: type, name: "instruct-run", to: url, force: true)
        }
        let prompts = entries.map { formatPrompt(InstructionEntry(instruction: $0.instruction, input: $0.input, output: $0.output), style: style) }
        let ids = prompts.map { tokenizer.encodeOrdinary($0).map(Int32.init) }
        let model = try GPT2Model(layout: checkpoint.layout, params: checkpoint.params)
        if let lora = checkpoint.lora { try model.attachLoRA(lora) }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("evaluate-manifest.json"))) as? [String: Any]
        let evaluated = try XCTUnwrap((manifest?["params"] as? [String: Any])?["max_new_tokens"] as? Int)
        let maxNew = 64
        let generated = try model.generate(prompts: ids, options: GenerationOptions(maxNewTokens: maxNew, eosId: Int32(GPT2BPETokenizer.endOfTextID)))
        let responses = try generated.indices.map { i in
            extractResponse(generatedText: try tokenizer.decode((ids[i] + generated[i].prefix(evaluated)).map(Int.init)), promptText: prompts[i],
                            marker: style.responseMarker, end: style.responseEnd)
        }
        XCTAssertEqual(responses, entries.map(\.model_response), "our regeneration differs from evaluate instruct's responses")
        let record: [String: Any] = ["prompts": prompts, "prompt_ids": ids.map { $0.map(Int.init) }, "max_new_tokens": maxNew,
                                     "eos": GPT2BPETokenizer.endOfTextID, "ours": generated.map { $0.map(Int.init) },
                                     "responses_equal_evaluate": responses == entries.map(\.model_response)]
        try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]).write(to: dir.appendingPathComponent("run.json"))
    }
}

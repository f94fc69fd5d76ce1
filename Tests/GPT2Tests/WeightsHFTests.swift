import Foundation
import XCTest
@testable import GPT2
@testable import GPT2Weights

/// Loads files written by transformers / safetensors (tools/reference/make_weights_fixture.py) and
/// compares every tensor of the flat buffer with the values Python read from the same files.
final class WeightsHFTests: WeightsTestCase {
    struct Expected: Decodable {
        struct Tensor: Decodable {
            var shape: [Int]
            var dtype: String
            var sum: Double
            var sum_abs: Double
            var first: [Double]
            var last: Double?
            var at_1_2: Double?
        }
        struct File: Decodable { var tensors: [String: Tensor]; var sha256: String }
        var files: [String: File]
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: weightsFixtures.appendingPathComponent("expected.json")))
    }

    /// Every layout tensor equals what Python read: first values and [1, 2] exactly, sums to 1e-9.
    func checkAgainstPython(_ params: [Float], layout: ParameterLayout, file: Expected.File, prefix: String = "",
                            line: UInt = #line) {
        for spec in layout.tensors where !spec.name.hasPrefix("out_head") {
            guard let want = file.tensors[prefix + spec.name] else {
                XCTFail("expected.json lacks \(prefix + spec.name)", line: line); continue
            }
            XCTAssertEqual(want.shape, spec.shape, spec.name, line: line)
            let got = params[spec.range]
            XCTAssertEqual(got.prefix(4).map(Double.init), want.first, spec.name, line: line)
            XCTAssertEqual(Double(got.last!), want.last, spec.name, line: line)
            if let at = want.at_1_2 {
                XCTAssertEqual(Double(got[got.startIndex + 1 * spec.shape[1] + 2]), at, "\(spec.name)[1,2]", line: line)
            }
            let sum = got.reduce(0.0) { $0 + Double($1) }
            let sumAbs = got.reduce(0.0) { $0 + abs(Double($1)) }
            XCTAssertEqual(sum, want.sum, accuracy: 1e-9 * max(1, want.sum_abs), spec.name, line: line)
            XCTAssertEqual(sumAbs, want.sum_abs, accuracy: 1e-9 * max(1, want.sum_abs), spec.name, line: line)
        }
    }

    func testPlainF32SaveMatchesPythonValues() throws {
        let exp = try expected()
        let layout = ParameterLayout(config: tinyConfig, head: .languageModel)
        // A folder holding model.safetensors and the file itself both work.
        let params = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig, head: .languageModel)
        XCTAssertEqual(params.count, layout.totalCount)
        checkAgainstPython(params, layout: layout, file: exp.files["tiny-gpt2/model.safetensors"]!)
        let again = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2/model.safetensors"),
                                      config: tinyConfig, head: .languageModel)
        XCTAssertEqual(again, params)
        // Every tensor of the file landed somewhere: the expected names are exactly the layout's.
        XCTAssertEqual(Set(exp.files["tiny-gpt2/model.safetensors"]!.tensors.keys), Set(layout.tensors.map(\.name)))
    }

    func testHalfPrecisionSaveMatchesPythonValues() throws {
        let exp = try expected()
        let layout = ParameterLayout(config: tinyConfig, head: .languageModel)
        let half = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2-f16"), config: tinyConfig, head: .languageModel)
        checkAgainstPython(half, layout: layout, file: exp.files["tiny-gpt2-f16/model.safetensors"]!)
        // And it is the F32 model rounded to half precision (relative error <= 2^-11, or tiny absolute).
        let full = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig, head: .languageModel)
        for (h, f) in zip(half, full) {
            XCTAssertLessThanOrEqual(abs(h - f), max(abs(f) * 0x1p-11, 0x1p-24))
        }
    }

    func testLMHeadModelSaveWithTransformerPrefix() throws {
        let exp = try expected()
        let layout = ParameterLayout(config: tinyConfig, head: .languageModel)
        let params = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2-lmhead"), config: tinyConfig, head: .languageModel)
        checkAgainstPython(params, layout: layout, file: exp.files["tiny-gpt2-lmhead/model.safetensors"]!, prefix: "transformer.")
        let plain = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig, head: .languageModel)
        XCTAssertEqual(params, plain)
    }

    func testHubStyleFileWithMaskBuffersAndLMHeadInBFloat16() throws {
        let exp = try expected()
        let file = exp.files["tiny-gpt2-hubstyle.safetensors"]!
        XCTAssertNotNil(file.tensors["h.0.attn.bias"])
        XCTAssertNotNil(file.tensors["h.1.attn.masked_bias"])
        XCTAssertNotNil(file.tensors["lm_head.weight"])
        let layout = ParameterLayout(config: tinyConfig, head: .languageModel)
        let params = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2-hubstyle.safetensors"),
                                       config: tinyConfig, head: .languageModel)
        checkAgainstPython(params, layout: layout, file: file)
    }

    func testClassifierHeadIsInitialisedLikeNNLinearFromTheSeed() throws {
        let lm = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig, head: .languageModel)
        let layout = ParameterLayout(config: tinyConfig, head: .classifier(numClasses: 2))
        let a = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig,
                                  head: .classifier(numClasses: 2), headInitSeed: 7)
        let b = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig,
                                  head: .classifier(numClasses: 2), headInitSeed: 7)
        let c = try loadHFWeights(from: weightsFixtures.appendingPathComponent("tiny-gpt2"), config: tinyConfig,
                                  head: .classifier(numClasses: 2), headInitSeed: 8)
        XCTAssertEqual(a.count, layout.totalCount)
        XCTAssertEqual(Array(a.prefix(lm.count)), lm)  // body untouched
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        let w = layout.spec(named: "out_head.weight")!
        let bias = layout.spec(named: "out_head.bias")!
        let bound = Float(1 / (64.0).squareRoot())
        for i in w.range.lowerBound..<bias.range.upperBound {
            XCTAssertLessThanOrEqual(abs(a[i]), bound)
        }
        XCTAssertEqual(Set(a[w.range]).count, w.count)  // not constant
    }

    func testInferConfigFromFile() throws {
        let c = try inferConfig(fromSafetensors: weightsFixtures.appendingPathComponent("tiny-gpt2"))
        XCTAssertEqual(c.nLayers, 2)
        XCTAssertEqual(c.embDim, 64)
        XCTAssertEqual(c.nHeads, 4)  // from config.json beside the file
        XCTAssertEqual(c.vocabSize, 300)
        XCTAssertEqual(c.contextLength, 32)
        XCTAssertTrue(c.qkvBias)
        let noJSON = try inferConfig(fromSafetensors: weightsFixtures.appendingPathComponent("tiny-gpt2-hubstyle.safetensors"))
        XCTAssertEqual(noJSON.nHeads, 1)  // emb_dim / 64 when nothing says otherwise
        XCTAssertEqual(noJSON.nLayers, 2)  // mask buffers are not layers
    }

    // MARK: bad input

    func testConfigThatDoesNotMatchTheFileSaysWhatTheFileIs() throws {
        let url = weightsFixtures.appendingPathComponent("tiny-gpt2")
        let m = errorMessage { _ = try loadHFWeights(from: url, config: .small, head: .languageModel) }
        assertMessage(m, contains: ["gpt2-small", "n_layers 12, emb_dim 768", "n_layers 2, emb_dim 64, vocab_size 300, context_length 32", "model.safetensors"])
        var threeLayers = tinyConfig
        threeLayers.nLayers = 3
        assertMessage(errorMessage { _ = try loadHFWeights(from: url, config: threeLayers, head: .languageModel) },
                      contains: ["n_layers 3", "n_layers 2"])
        var noBias = tinyConfig
        noBias.qkvBias = false
        assertMessage(errorMessage { _ = try loadHFWeights(from: url, config: noBias, head: .languageModel) },
                      contains: ["no qkv bias"])
    }

    /// Rewrites the fixture with one change and returns the loader's message.
    func loadModified(_ change: (inout [RawTensor]) -> Void, head: ModelHead = .languageModel, line: UInt = #line) throws -> String {
        var tensors = try rawTensors(of: weightsFixtures.appendingPathComponent("tiny-gpt2/model.safetensors"))
        change(&tensors)
        let url = dir.appendingPathComponent("modified-\(line).safetensors")
        try writeRaw(tensors, to: url)
        let m = errorMessage({ _ = try loadHFWeights(from: url, config: tinyConfig, head: head) }, line: line)
        assertMessage(m, contains: [url.lastPathComponent], line: line)
        return m
    }

    func testMissingUnexpectedMisshapedAndWrongDtypeTensorsAreNamed() throws {
        assertMessage(try loadModified { $0.removeAll { $0.name == "h.1.ln_2.bias" } }, contains: ["missing tensor \"h.1.ln_2.bias\""])
        assertMessage(try loadModified { $0.removeAll { $0.name == "h.0.attn.c_attn.bias" } }, contains: ["missing tensor \"h.0.attn.c_attn.bias\""])
        assertMessage(try loadModified { $0.append(RawTensor(name: "h.0.mlp.extra", dtype: "F32", shape: [1], bytes: f32Bytes([1]))) },
                      contains: ["unexpected tensor \"h.0.mlp.extra\""])
        // A classifier head in a file loaded as LM model is unexpected too.
        assertMessage(try loadModified { $0.append(RawTensor(name: "out_head.bias", dtype: "F32", shape: [2], bytes: f32Bytes([1, 2]))) },
                      contains: ["unexpected tensor \"out_head.bias\""])
        assertMessage(try loadModified({ $0.append(RawTensor(name: "out_head.bias", dtype: "F32", shape: [2], bytes: f32Bytes([1, 2]))) },
                                       head: .classifier(numClasses: 2)),
                      contains: ["out_head.bias", "not the rest of the classifier head"])
        assertMessage(try loadModified { t in
            let i = t.firstIndex { $0.name == "h.1.attn.c_attn.weight" }!
            t[i].shape = [192, 64]
        }, contains: ["\"h.1.attn.c_attn.weight\"", "shape [192, 64], expected [64, 192]", "transposed"])
        assertMessage(try loadModified { t in
            let i = t.firstIndex { $0.name == "h.0.ln_1.weight" }!
            t[i] = RawTensor(name: "h.0.ln_1.weight", dtype: "I32", shape: [64], bytes: t[i].bytes)
        }, contains: ["\"h.0.ln_1.weight\"", "dtype I32"])
        assertMessage(try loadModified { t in
            let i = t.firstIndex { $0.name == "ln_f.bias" }!
            t[i].bytes = f32Bytes([Float](repeating: .nan, count: 64))
        }, contains: ["\"ln_f.bias\"", "non-finite"])
        assertMessage(try loadModified { t in
            t.append(RawTensor(name: "lm_head.weight", dtype: "F32", shape: [299, 64], bytes: f32Bytes([Float](repeating: 0, count: 299 * 64))))
        }, contains: ["lm_head.weight", "[299, 64]", "tied"])
        assertMessage(try loadModified { t in
            let i = t.firstIndex { $0.name == "wte.weight" }!
            t[i].name = "transformer.wte.weight"
        }, contains: ["lacks the \"transformer.\" prefix"])
    }

    func testTruncatedAndMissingFilesAreClearErrors() throws {
        let bytes = try Data(contentsOf: weightsFixtures.appendingPathComponent("tiny-gpt2/model.safetensors"))
        let url = dir.appendingPathComponent("model.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: url)
        assertMessage(errorMessage { _ = try loadHFWeights(from: url, config: tinyConfig, head: .languageModel) },
                      contains: ["truncated", url.path, "file size \(bytes.count)"])
        assertMessage(errorMessage { _ = try loadHFWeights(from: self.dir.appendingPathComponent("none"), config: tinyConfig, head: .languageModel) },
                      contains: ["not found", "none"])
        let empty = dir.appendingPathComponent("empty-folder")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertMessage(errorMessage { _ = try loadHFWeights(from: empty, config: tinyConfig, head: .languageModel) },
                      contains: ["no model.safetensors"])
    }
}

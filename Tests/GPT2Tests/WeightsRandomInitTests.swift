import Foundation
import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

final class WeightsRandomInitTests: WeightsTestCase {
    // Wide enough for tight statistics, small enough for a debug build: 1.2 M parameters.
    let config = GPT2Config(name: "stats", vocabSize: 1000, contextLength: 64, embDim: 128, nHeads: 4, nLayers: 2)

    func stats(_ values: ArraySlice<Float>) -> (mean: Double, std: Double, maxAbs: Double) {
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot(), values.reduce(0.0) { max($0, abs(Double($1))) })
    }

    func testEachTensorHasTheBooksPyTorchDefaultDistribution() {
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))
        let w = randomWeights(layout: layout, seed: 123)
        XCTAssertEqual(w.count, layout.totalCount)
        for spec in layout.tensors {
            let s = stats(w[spec.range])
            let n = Double(spec.count)
            switch initKind(of: spec, config: config) {
            case .ones:
                XCTAssertTrue(w[spec.range].allSatisfy { $0 == 1 }, spec.name)
            case .zeros:
                XCTAssertTrue(w[spec.range].allSatisfy { $0 == 0 }, spec.name)
            case .normal:
                // N(0, 1): the mean's standard error is 1/sqrt(n); the std's is about 1/sqrt(2n). 5 sigma.
                XCTAssertEqual(s.mean, 0, accuracy: 5 / n.squareRoot(), spec.name)
                XCTAssertEqual(s.std, 1, accuracy: 5 / (2 * n).squareRoot(), spec.name)
                XCTAssertGreaterThan(s.maxAbs, 3, spec.name)  // tails exist (P(all |x| < 3) ~ 0 at this n)
            case .uniform(let fanIn):
                let bound = 1 / Double(fanIn).squareRoot()
                XCTAssertLessThanOrEqual(s.maxAbs, bound, spec.name)
                // P(every |x| < bound (1 - 10/n)) = (1 - 10/n)^n ~ e^-10.
                XCTAssertGreaterThan(s.maxAbs, bound * (1 - 10 / n), spec.name)
                let sigma = bound / 3.0.squareRoot()
                XCTAssertEqual(s.mean, 0, accuracy: 5 * sigma / n.squareRoot(), spec.name)
                // The sample std of a uniform has relative standard error sqrt((kurtosis - 1) / 4n) = sqrt(0.2 / n).
                XCTAssertEqual(s.std, sigma, accuracy: 5 * (0.2 / n).squareRoot() * sigma, spec.name)
            case .normalStd:
                XCTFail("\(spec.name): the torch scheme has no N(0, std) tensor")
            }
        }
        // The kinds follow the book's modules.
        XCTAssertEqual(initKind(of: layout.spec(named: "h.1.mlp.c_proj.weight")!, config: config), .uniform(fanIn: 512))
        XCTAssertEqual(initKind(of: layout.spec(named: "h.1.mlp.c_fc.bias")!, config: config), .uniform(fanIn: 128))
        XCTAssertEqual(initKind(of: layout.spec(named: "h.0.attn.c_attn.weight")!, config: config), .uniform(fanIn: 128))
        XCTAssertEqual(initKind(of: layout.spec(named: "out_head.weight")!, config: config), .uniform(fanIn: 128))
        XCTAssertEqual(initKind(of: layout.spec(named: "wpe.weight")!, config: config), .normal)
        XCTAssertEqual(initKind(of: layout.spec(named: "ln_f.weight")!, config: config), .ones)
    }

    func testGPT2SchemeHasGPT2sDistributions() {
        let layout = ParameterLayout(config: config, head: .classifier(numClasses: 2))
        let w = randomWeights(layout: layout, seed: 123, scheme: .gpt2)
        let residualStd = 0.02 / 4.0.squareRoot()   // 0.02 / sqrt(2 n_layers), n_layers 2
        for spec in layout.tensors {
            let s = stats(w[spec.range])
            let n = Double(spec.count)
            switch initKind(of: spec, config: config, scheme: .gpt2) {
            case .ones:
                XCTAssertTrue(w[spec.range].allSatisfy { $0 == 1 }, spec.name)
            case .zeros:
                XCTAssertTrue(w[spec.range].allSatisfy { $0 == 0 }, spec.name)
            case .normalStd(let std):
                XCTAssertEqual(std, spec.name.hasSuffix("c_proj.weight") ? residualStd : 0.02, accuracy: 1e-15, spec.name)
                XCTAssertEqual(s.mean, 0, accuracy: 5 * std / n.squareRoot(), spec.name)
                XCTAssertEqual(s.std, std, accuracy: 5 * std / (2 * n).squareRoot(), spec.name)
            case .normal, .uniform:
                XCTFail("\(spec.name): GPT-2's scheme draws only N(0, std), ones and zeros")
            }
        }
        // Every bias is zero, LayerNorm scales one (checked above); the kinds by name:
        XCTAssertEqual(initKind(of: layout.spec(named: "wte.weight")!, config: config, scheme: .gpt2), .normalStd(0.02))
        XCTAssertEqual(initKind(of: layout.spec(named: "h.1.mlp.c_proj.weight")!, config: config, scheme: .gpt2), .normalStd(residualStd))
        XCTAssertEqual(initKind(of: layout.spec(named: "h.0.attn.c_proj.weight")!, config: config, scheme: .gpt2), .normalStd(residualStd))
        XCTAssertEqual(initKind(of: layout.spec(named: "h.0.attn.c_attn.bias")!, config: config, scheme: .gpt2), .zeros)
        XCTAssertEqual(initKind(of: layout.spec(named: "ln_f.weight")!, config: config, scheme: .gpt2), .ones)
        // The torch scheme is still the default and unchanged by the new one (chapter 6 runs keep their numbers).
        XCTAssertEqual(randomWeights(layout: layout, seed: 123), randomWeights(layout: layout, seed: 123, scheme: .torch))
        XCTAssertThrowsError(try InitScheme.parse("xavier")) { XCTAssertTrue("\($0)".contains("unknown init \"xavier\""), "\($0)") }
    }

    /// With the output head tied to the token embedding, GPT-2's scheme starts a language model
    /// near the loss of a uniform guess, ln(vocab_size); PyTorch's N(0, 1) embedding does not.
    func testGPT2SchemeStartsTheTiedLanguageModelNearLnVocab() throws {
        let c = GPT2Config(name: "lm", vocabSize: 50257, contextLength: 32, embDim: 256, nHeads: 4, nLayers: 2)
        let layout = ParameterLayout(config: c, head: .languageModel)
        var rng = SeededGenerator(seed: 7)
        let tokens = (0..<(2 * 32)).map { _ in Int32(rng.next() % 50257) }
        let targets = (0..<(2 * 32)).map { _ in Int32(rng.next() % 50257) }
        func loss(_ scheme: InitScheme) throws -> Double {
            let model = try GPT2Model(layout: layout, params: randomWeights(layout: layout, seed: 123, scheme: scheme))
            return Double(try model.loss(tokens: tokens, batch: 2, seqLen: 32, objective: .languageModel(targets: targets)))
        }
        // Logits have variance about emb_dim * 0.02^2 = 0.1 (the final LayerNorm gives unit-variance
        // features): the expected loss is about ln V + 0.1 / 2.
        let gpt2 = try loss(.gpt2)
        XCTAssertEqual(gpt2, log(50257.0), accuracy: 0.25)
        // The torch scheme (N(0, 1) tied embedding) gives logits of standard deviation about 16.
        XCTAssertGreaterThan(try loss(.torch), 25)
    }

    func testSeedsAreDeterministicAndDistinct() {
        let layout = ParameterLayout(config: config, head: .languageModel)
        let a = randomWeights(layout: layout, seed: 1)
        XCTAssertEqual(a, randomWeights(layout: layout, seed: 1))
        let b = randomWeights(layout: layout, seed: 2)
        let wte = layout.spec(named: "wte.weight")!
        let equal = zip(a[wte.range], b[wte.range]).filter { $0 == $1 }.count
        XCTAssertLessThan(equal, 5)
        // Per-tensor streams: a classifier model's body is the LM model's body for the same seed.
        let cls = randomWeights(layout: ParameterLayout(config: config, head: .classifier(numClasses: 3)), seed: 1)
        XCTAssertEqual(Array(cls.prefix(a.count)), a)
        // Different tensors of the same kind and size do not repeat each other.
        let q0 = layout.spec(named: "h.0.attn.c_proj.weight")!, q1 = layout.spec(named: "h.1.attn.c_proj.weight")!
        XCTAssertNotEqual(Array(a[q0.range]), Array(a[q1.range]))
    }

    func testGeneratorMatchesKnownAnswers() {
        // Known answers: xoshiro256** from state (1, 2, 3, 4) per the reference C code, and from
        // seed 0 through SplitMix64 (whose first output for 0 is the well-known 0xe220a8397b1dcdaf),
        // computed independently in Python (see docs/weights.md).
        var raw = SeededGenerator(state: (1, 2, 3, 4))
        XCTAssertEqual((0..<4).map { _ in raw.next() }, [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240])
        var seeded = SeededGenerator(seed: 0)
        XCTAssertEqual((0..<4).map { _ in seeded.next() },
                       [11_091_344_671_253_066_420, 13_793_997_310_169_335_082, 1_900_383_378_846_508_768, 7_684_712_102_626_143_532])
        // Uniform in [0, 1): over 100k draws the mean is 0.5 within 5 standard errors.
        var u = SeededGenerator(seed: 99)
        var sum = 0.0
        for _ in 0..<100_000 { let x = u.nextUnit(); XCTAssertTrue(x >= 0 && x < 1); sum += x }
        XCTAssertEqual(sum / 100_000, 0.5, accuracy: 5 * (1 / 12.0).squareRoot() / 100_000.0.squareRoot())
    }
}

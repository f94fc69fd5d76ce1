import XCTest
import ArtifactKit
@testable import GPT2
@testable import GPT2Weights

/// Tiny deterministic models and finite-difference checks of the hand-written backward pass.
enum TinyModel {
    static func config(dropRate: Float = 0, layers: Int = 2, qkvBias: Bool = true) -> GPT2Config {
        GPT2Config(name: "tiny", vocabSize: 23, contextLength: 8, embDim: 16, nHeads: 2, nLayers: layers,
                   dropRate: dropRate, qkvBias: qkvBias)
    }

    /// Uniform weights in [-scale, scale], LayerNorm weights around 1, from a fixed seed.
    static func params(_ layout: ParameterLayout, seed: UInt64 = 7, scale: Float = 0.3) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var p = [Float](repeating: 0, count: layout.totalCount)
        for t in layout.tensors {
            let isNormWeight = t.name.hasSuffix("ln_1.weight") || t.name.hasSuffix("ln_2.weight") || t.name == "ln_f.weight"
            for i in t.range {
                let u = (rng.nextUnitFloat() * 2 - 1) * scale
                p[i] = isNormWeight ? 1 + u : u
            }
        }
        return p
    }

    static func model(head: ModelHead = .languageModel, dropRate: Float = 0, layers: Int = 2, qkvBias: Bool = true) throws -> GPT2Model {
        let layout = ParameterLayout(config: config(dropRate: dropRate, layers: layers, qkvBias: qkvBias), head: head)
        return try GPT2Model(layout: layout, params: params(layout))
    }

    static func tokens(_ count: Int, vocab: Int = 23, seed: UInt64 = 3) -> [Int32] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }
}

final class ComputeTests: XCTestCase {
    let B = 2, T = 6

    /// Central differences of the loss for `samples` entries of every tensor, against the
    /// analytic gradient, with the dropout masks fixed by the seed.
    func checkFiniteDifferences(_ model: GPT2Model, objective: Objective, trainable: TrainableSet,
                                samples: Int = 3, dropoutSeed: UInt64 = 0, training: Bool = false,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let tokens = TinyModel.tokens(B * T)
        model.zeroGradients()
        try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: trainable,
                                  training: training, dropoutSeed: dropoutSeed)
        let analytic = model.gradients
        let base = model.parameters
        var rng = SeededGenerator(seed: 11)
        let h: Float = 1e-2
        var checked = 0
        for spec in model.layout.tensors {
            let isTrainable = trainable.contains(spec.name)
            for _ in 0..<samples {
                let i = spec.offset + Int(rng.next() % UInt64(spec.count))
                if !isTrainable {
                    XCTAssertEqual(analytic[i], 0, "frozen \(spec.name) got a gradient", file: file, line: line)
                    continue
                }
                func lossAt(_ delta: Float) throws -> Float {
                    var p = base
                    p[i] += delta
                    let scratch = try GPT2Model(layout: model.layout, params: p)
                    // A fresh model gives the same masks for the same seed; the loss of the
                    // forwardBackward call is the training-mode loss.
                    scratch.zeroGradients()
                    return try scratch.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective,
                                                       trainable: trainable, training: training, dropoutSeed: dropoutSeed)
                }
                let numeric = (try lossAt(h) - lossAt(-h)) / (2 * h)
                let a = analytic[i]
                XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * abs(numeric),
                               "\(spec.name)[\(i - spec.offset)] analytic \(a) numeric \(numeric)", file: file, line: line)
                checked += 1
            }
        }
        try model.setParameters(base)
        XCTAssertGreaterThan(checked, 0, file: file, line: line)
    }

    func lmTargets() -> [Int32] {
        var t = TinyModel.tokens(B * T, seed: 5)
        t[0] = -100; t[4] = -100; t[T + 2] = -100
        return t
    }

    func testLanguageModelGradientsMatchFiniteDifferences() throws {
        let model = try TinyModel.model()
        try checkFiniteDifferences(model, objective: .languageModel(targets: lmTargets()), trainable: .all(model.layout))
    }

    func testDropoutGradientsMatchFiniteDifferencesWithFixedMasks() throws {
        let model = try TinyModel.model(dropRate: 0.2)
        try checkFiniteDifferences(model, objective: .languageModel(targets: lmTargets()), trainable: .all(model.layout),
                                   samples: 2, dropoutSeed: 99, training: true)
    }

    /// Gradients with a partial trainable set must equal the same tensors' gradients when
    /// everything is trainable (backprop stops early but loses nothing above the cut).
    func testPartialTrainableSetsGiveTheSameGradients() throws {
        let model = try TinyModel.model(layers: 3)
        let tokens = TinyModel.tokens(B * T)
        let objective = Objective.languageModel(targets: lmTargets())
        model.zeroGradients()
        try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: .all(model.layout))
        let full = model.gradients
        for set in [TrainableSet.lastBlocks(1, model.layout), .lastBlocks(2, model.layout), .headOnly(model.layout),
                    TrainableSet(names: ["ln_f.weight", "ln_f.bias"]),
                    TrainableSet(names: ["h.1.ln_1.weight", "ln_f.bias"]), TrainableSet(names: ["h.2.ln_1.bias"]),
                    TrainableSet(names: ["h.2.attn.c_attn.weight", "wpe.weight"])] {
            model.zeroGradients()
            try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: set)
            let partial = model.gradients
            for spec in model.layout.tensors {
                for i in spec.range {
                    let expected = set.contains(spec.name) ? full[i] : 0
                    XCTAssertEqual(partial[i], expected, accuracy: 1e-6 + 1e-5 * abs(expected), "\(spec.name) with \(set.names.sorted())")
                }
            }
        }
    }

    func testLossMatchesForwardLogitsAndIgnoresMinus100() throws {
        let model = try TinyModel.model()
        let tokens = TinyModel.tokens(B * T)
        let targets = lmTargets()
        let logits = try model.logits(tokens: tokens, batch: B, seqLen: T)
        var total: Double = 0, kept = 0
        for i in 0..<(B * T) where targets[i] != -100 {
            let row = logits[(i * 23)..<((i + 1) * 23)].map(Double.init)
            let mx = row.max()!
            let lse = log(row.map { exp($0 - mx) }.reduce(0, +)) + mx
            total += lse - row[Int(targets[i])]
            kept += 1
        }
        let loss = try model.loss(tokens: tokens, batch: B, seqLen: T, objective: .languageModel(targets: targets))
        XCTAssertEqual(Double(loss), total / Double(kept), accuracy: 1e-5)

        // All targets ignored: loss 0, gradients 0, no NaN.
        let none = [Int32](repeating: -100, count: B * T)
        model.zeroGradients()
        let zero = try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: .languageModel(targets: none),
                                             trainable: .all(model.layout))
        XCTAssertEqual(zero, 0)
        XCTAssertTrue(model.gradients.allSatisfy { $0 == 0 })
    }

    /// Causality: changing a later token never changes earlier logits, and does change its own.
    func testCausalMask() throws {
        let model = try TinyModel.model()
        var tokens = TinyModel.tokens(B * T)
        let before = try model.logits(tokens: tokens, batch: B, seqLen: T)
        tokens[T - 1] = (tokens[T - 1] + 1) % 23
        let after = try model.logits(tokens: tokens, batch: B, seqLen: T)
        XCTAssertEqual(Array(before[0..<((T - 1) * 23)]), Array(after[0..<((T - 1) * 23)]))
        XCTAssertNotEqual(Array(before[((T - 1) * 23)..<(T * 23)]), Array(after[((T - 1) * 23)..<(T * 23)]))
    }

    func testBadInputsGiveClearErrors() throws {
        let model = try TinyModel.model()
        var tokens = TinyModel.tokens(B * T)
        tokens[T + 3] = 23
        XCTAssertThrowsError(try model.logits(tokens: tokens, batch: B, seqLen: T)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("token id 23") && text.contains("row 1") && text.contains("position 3"), text)
        }
        XCTAssertThrowsError(try model.logits(tokens: TinyModel.tokens(9), batch: 1, seqLen: 9)) { error in
            XCTAssertTrue("\(error)".contains("context length 8"), "\(error)")
        }
        XCTAssertThrowsError(try model.loss(tokens: TinyModel.tokens(B * T), batch: B, seqLen: T,
                                            objective: .languageModel(targets: [Int32](repeating: 40, count: B * T))))
        XCTAssertThrowsError(try GPT2Model(layout: model.layout, params: [1, 2, 3]))
        // A classifier layout has no language-model loss or logits here (ClassifierModel runs it).
        let classifier = try TinyModel.model(head: .classifier(numClasses: 2))
        XCTAssertThrowsError(try classifier.logits(tokens: TinyModel.tokens(B * T), batch: B, seqLen: T)) { error in
            XCTAssertTrue("\(error)".contains("language-model head"), "\(error)")
        }
        XCTAssertThrowsError(try classifier.forwardBackward(tokens: TinyModel.tokens(B * T), batch: B, seqLen: T,
                                                            objective: .languageModel(targets: lmTargets()),
                                                            trainable: .all(classifier.layout))) { error in
            XCTAssertTrue("\(error)".contains("classifier head"), "\(error)")
        }
    }

    func testNonFiniteLossThrowsTrainingError() throws {
        let model = try TinyModel.model()
        var p = model.parameters
        p[model.layout.spec(named: "ln_f.bias")!.offset] = .nan
        try model.setParameters(p)
        XCTAssertThrowsError(try model.forwardBackward(tokens: TinyModel.tokens(B * T), batch: B, seqLen: T,
                                                       objective: .languageModel(targets: lmTargets()),
                                                       trainable: .all(model.layout))) { error in
            XCTAssertTrue(error is TrainingError, "\(error)")
        }
    }

    func testDropoutIsSeededAndOffInEvaluation() throws {
        let model = try TinyModel.model(dropRate: 0.5)
        let tokens = TinyModel.tokens(B * T)
        let objective = Objective.languageModel(targets: lmTargets())
        let all = TrainableSet.all(model.layout)
        let a = try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: all, dropoutSeed: 1)
        let b = try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: all, dropoutSeed: 1)
        let c = try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: all, dropoutSeed: 2)
        let eval1 = try model.loss(tokens: tokens, batch: B, seqLen: T, objective: objective)
        let eval2 = try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: all, training: false)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertNotEqual(a, eval1)
        XCTAssertEqual(eval1, eval2, accuracy: 1e-6)
    }

    func testAdamWMatchesTheTorchFormulaAndSkipsFrozenTensors() throws {
        let model = try TinyModel.model()
        let trainable = TrainableSet.lastBlocks(1, model.layout)
        let tokens = TinyModel.tokens(B * T)
        let objective = Objective.languageModel(targets: lmTargets())
        let opt = AdamW(parameterCount: model.layout.totalCount, learningRate: 1e-2, weightDecay: 0.1)
        var p = model.parameters.map(Double.init)
        var m = [Double](repeating: 0, count: p.count), v = m
        for step in 1...3 {
            model.zeroGradients()
            try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: objective, trainable: trainable)
            let g = model.gradients
            try opt.update(model, trainable: trainable)
            for spec in model.layout.tensors where trainable.contains(spec.name) {
                for i in spec.range {
                    p[i] *= 1 - 1e-2 * 0.1
                    m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                    v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                    let mh = m[i] / (1 - pow(0.9, Double(step))), vh = v[i] / (1 - pow(0.999, Double(step)))
                    p[i] -= 1e-2 * mh / (vh.squareRoot() + 1e-8)
                }
            }
            let actual = model.parameters
            for i in 0..<p.count { XCTAssertEqual(Double(actual[i]), p[i], accuracy: 1e-5) }
            p = actual.map(Double.init)   // continue from the model's floats
        }
        XCTAssertEqual(opt.step, 3)
        // A frozen tensor is unchanged.
        let frozen = model.layout.spec(named: "h.0.mlp.c_fc.weight")!
        let fresh = TinyModel.params(model.layout)
        XCTAssertEqual(Array(model.parameters[frozen.range]), Array(fresh[frozen.range]))
    }

    func testGradientAccumulationAddsMicroBatches() throws {
        let model = try TinyModel.model()
        let tokens = TinyModel.tokens(B * T), targets = TinyModel.tokens(B * T, seed: 9)
        let all = TrainableSet.all(model.layout)
        model.zeroGradients()
        try model.forwardBackward(tokens: tokens, batch: B, seqLen: T, objective: .languageModel(targets: targets), trainable: all)
        let full = model.gradients
        model.zeroGradients()
        for b in 0..<B {
            let rows = (b * T)..<((b + 1) * T)
            try model.forwardBackward(tokens: Array(tokens[rows]), batch: 1, seqLen: T,
                                      objective: .languageModel(targets: Array(targets[rows])), trainable: all,
                                      gradientScale: 0.5)
        }
        let accumulated = model.gradients
        for i in 0..<full.count { XCTAssertEqual(accumulated[i], full[i], accuracy: 1e-5 + 1e-4 * abs(full[i])) }
    }
}

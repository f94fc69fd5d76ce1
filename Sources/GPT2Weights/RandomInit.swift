import ArtifactKit
import Foundation
import GPT2

/// Which initialisation `--weights random` draws.
public enum InitScheme: String, CaseIterable, Codable, Sendable {
    /// PyTorch's module defaults, as a freshly built `GPTModel` of the book has them: nn.Embedding
    /// N(0, 1), nn.Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, LayerNorm 1 / 0.
    /// The book's model has a separate output head; with GPT-2's tied head (ours) the N(0, 1)
    /// embedding makes the initial logits huge (loss in the hundreds), so this suits the classifier
    /// (chapter 6), whose head is its own tensor.
    case torch
    /// GPT-2's own scheme (OpenAI's code; Hugging Face `GPT2PreTrainedModel._init_weights`):
    /// embeddings and every Linear/Conv1D weight N(0, 0.02), the two residual projections
    /// (`attn.c_proj.weight`, `mlp.c_proj.weight`) N(0, 0.02 / sqrt(2 n_layers)), biases 0,
    /// LayerNorm 1 / 0. With the tied head the initial logits have a standard deviation of about
    /// 0.02 sqrt(emb_dim), so the initial loss is close to ln(vocab_size), a uniform guess.
    case gpt2

    /// GPT-2's `initializer_range`.
    public static let gpt2Std = 0.02

    public static func parse(_ text: String, location: String = "init") throws -> InitScheme {
        guard let s = InitScheme(rawValue: text) else {
            throw PipelineError("unknown init \"\(text)\"", location: location,
                                hint: "use gpt2 (GPT-2's N(0, 0.02) scheme) or torch (PyTorch's module defaults, as the book's GPTModel)")
        }
        return s
    }
}

/// How a tensor is initialised.
public enum InitKind: Equatable, Sendable {
    /// nn.Embedding: N(0, 1).
    case normal
    /// N(0, std^2) (GPT-2's scheme).
    case normalStd(Double)
    /// nn.Linear weight and bias: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (kaiming_uniform with a = sqrt(5)).
    case uniform(fanIn: Int)
    /// LayerNorm scale.
    case ones
    /// LayerNorm shift, and every bias in GPT-2's scheme.
    case zeros
}

/// The initialisation of each tensor, by its HF name. `.torch`: the default PyTorch
/// initialisation of the book's `GPTModel` — q, k and v are three nn.Linear(C, C) (fan-in C, one
/// bound for the fused c_attn), out_proj nn.Linear(C, C), the feed-forward nn.Linear(C, 4C) and
/// nn.Linear(4C, C), and the classifier nn.Linear(C, K). `.gpt2`: see `InitScheme.gpt2`.
public func initKind(of spec: TensorSpec, config: GPT2Config, scheme: InitScheme = .torch) -> InitKind {
    let C = config.embDim
    let name = spec.name
    if name.hasSuffix("ln_1.weight") || name.hasSuffix("ln_2.weight") || name == "ln_f.weight" { return .ones }
    if name.hasSuffix("ln_1.bias") || name.hasSuffix("ln_2.bias") || name == "ln_f.bias" { return .zeros }
    switch scheme {
    case .torch:
        if name == "wte.weight" || name == "wpe.weight" { return .normal }
        if name.hasSuffix("mlp.c_proj.weight") || name.hasSuffix("mlp.c_proj.bias") { return .uniform(fanIn: 4 * C) }
        // c_attn, attn.c_proj, mlp.c_fc, out_head: all take C inputs.
        return .uniform(fanIn: C)
    case .gpt2:
        if name.hasSuffix(".bias") { return .zeros }
        if name.hasSuffix("c_proj.weight") {
            return .normalStd(InitScheme.gpt2Std / Double(2 * config.nLayers).squareRoot())
        }
        // wte, wpe, c_attn, c_fc, out_head.
        return .normalStd(InitScheme.gpt2Std)
    }
}

/// 64-bit FNV-1a, used to give every tensor its own random stream derived from (seed, name), so a
/// tensor's initial values do not depend on which other tensors the layout holds: the body of a
/// classifier model equals the LM model's body for the same seed.
func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

/// Fills `buffer[spec.range]` with the scheme's distribution (PyTorch's or GPT-2's distribution, not their numbers).
public func randomInitialize(_ spec: TensorSpec, config: GPT2Config, seed: UInt64, scheme: InitScheme = .torch,
                             into buffer: inout [Float]) {
    buffer.withUnsafeMutableBufferPointer { randomInitialize(spec, config: config, seed: seed, scheme: scheme, into: $0) }
}

/// `randomInitialize` into raw memory.
public func randomInitialize(_ spec: TensorSpec, config: GPT2Config, seed: UInt64, scheme: InitScheme = .torch,
                             into buf: UnsafeMutableBufferPointer<Float>) {
    var rng = SeededGenerator(seed: seed ^ fnv1a64(spec.name))
    let range = spec.range
    func fillNormal(_ std: Double) {
        var i = range.lowerBound
        while i < range.upperBound {
            let (a, b) = rng.nextNormalPair()
            buf[i] = Float(a * std)
            if i + 1 < range.upperBound { buf[i + 1] = Float(b * std) }
            i += 2
        }
    }
    switch initKind(of: spec, config: config, scheme: scheme) {
    case .ones:
        for i in range { buf[i] = 1 }
    case .zeros:
        for i in range { buf[i] = 0 }
    case .uniform(let fanIn):
        let bound = 1.0 / Double(fanIn).squareRoot()
        for i in range { buf[i] = Float((2 * rng.nextUnit() - 1) * bound) }
    case .normal:
        fillNormal(1)
    case .normalStd(let std):
        fillNormal(std)
    }
}

/// A complete flat parameter buffer for `--weights random`, deterministic for a given seed:
/// `.torch` (the default) like the book's freshly built `GPTModel`, `.gpt2` like a fresh GPT-2.
public func randomWeights(layout: ParameterLayout, seed: UInt64, scheme: InitScheme = .torch) -> [Float] {
    var buffer = [Float](repeating: 0, count: layout.totalCount)
    buffer.withUnsafeMutableBufferPointer { randomWeights(layout: layout, seed: seed, scheme: scheme, into: $0) }
    return buffer
}

/// `randomWeights` written straight into a model's own buffer (no second copy of the weights).
public func randomWeights(layout: ParameterLayout, seed: UInt64, scheme: InitScheme = .torch, into buffer: UnsafeMutableBufferPointer<Float>) {
    precondition(buffer.count == layout.totalCount)
    for spec in layout.tensors {
        randomInitialize(spec, config: layout.config, seed: seed, scheme: scheme, into: buffer)
    }
}

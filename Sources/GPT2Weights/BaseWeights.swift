import ArtifactKit
import Foundation
import GPT2

/// Which base model a run starts from: the `model`, `weights` and `weights_file` params that both
/// trainers share, coded into the same flat object as the settings around it.
public struct BaseModelChoice: Codable, Equatable, Sendable {
    /// A preset name (gpt2-small, ...) or a JSON model config.
    public var model: String
    public var weights: WeightsSource = .pretrained
    public var weightsFile: String? = nil

    public init(model: String, weights: WeightsSource = .pretrained, weightsFile: String? = nil) {
        self.model = model
        self.weights = weights
        self.weightsFile = weightsFile
    }

    enum CodingKeys: String, CodingKey { case model, weights, weightsFile = "weights_file" }

    /// `weights_file` is written as null when absent, so a manifest shows that no file was used.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(weights, forKey: .weights)
        try c.encode(weightsFile, forKey: .weightsFile)
    }

    /// Checks `weights` and `weights_file` (pipeline keys `train.weights`, `train.weights_file`).
    public func validate() throws {
        if weights == .pretrained && (weightsFile ?? "").isEmpty {
            throw PipelineError("weights: pretrained needs a weights file", location: "train.weights_file",
                                hint: "pass --weights-file model.safetensors, or --weights random to train from random weights")
        }
    }

    /// The model config for `model`: a preset name, or a path to a JSON config.
    public func modelConfig() throws -> GPT2Config {
        guard model.hasSuffix(".json") else { return try GPT2Config.named(model) }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: model)) else {
            throw PipelineError("cannot read model config", location: model)
        }
        do {
            let c = try JSONDecoder().decode(GPT2Config.self, from: data)
            try c.validate()
            return c
        } catch let e as PipelineError { throw e } catch {
            throw PipelineError("not a model config: \(error)", location: model)
        }
    }
}

/// Settings that hold a `BaseModelChoice` as `base` read and write its fields as their own
/// (`settings.model`) through `@dynamicMemberLookup`.
public protocol BaseModelSettings {
    var base: BaseModelChoice { get set }
}

extension BaseModelSettings {
    public subscript<T>(dynamicMember path: WritableKeyPath<BaseModelChoice, T>) -> T {
        get { base[keyPath: path] }
        set { base[keyPath: path] = newValue }
    }
}

/// The weights fine-tuning starts from: OpenAI's GPT-2 (Hugging Face safetensors) or a seeded
/// random initialisation, plus a freshly initialised classification head.
public struct BaseWeights {
    public var parameters: [Float]
    /// "sha256:<hex>" of the weights file, or "random:<seed>": what a resume state must match.
    public var identity: String
    public var file: URL?

    /// Loads or draws the base weights with a freshly initialised classification head (the book:
    /// torch.manual_seed(123); model.out_head = nn.Linear(emb_dim, num_classes)). The head is
    /// initialised like nn.Linear (uniform ±1/sqrt(emb_dim)) from the seed, so its numbers differ
    /// from torch's but not their distribution. `initScheme` decides random weights (the classifier
    /// keeps the book's `.torch`; `train instruct` defaults to `.gpt2`, see `InitScheme`).
    public static func load(_ s: BaseModelChoice, seed: UInt64, layout: ParameterLayout, initScheme: InitScheme = .torch) throws -> BaseWeights {
        var base = try describe(s, seed: seed, layout: layout, initScheme: initScheme)
        if let url = base.file {
            base.parameters = try loadHFWeights(from: url, config: layout.config, head: layout.head, headInitSeed: seed)
        } else {
            base.parameters = randomWeights(layout: layout, seed: seed, scheme: initScheme)
        }
        return base
    }

    /// The base weights as a model, its parameters held once: random weights are drawn straight
    /// into the model's buffer; a file's are read, copied in and dropped. The returned
    /// `BaseWeights` has no parameters (the model holds them).
    public static func model(_ s: BaseModelChoice, seed: UInt64, layout: ParameterLayout, initScheme: InitScheme = .torch) throws -> (BaseWeights, GPT2Model) {
        let base = try describe(s, seed: seed, layout: layout, initScheme: initScheme)
        return (base, try model(of: base, seed: seed, layout: layout, initScheme: initScheme))
    }

    /// `model` for base weights already described (their file is not hashed again).
    public static func model(of base: BaseWeights, seed: UInt64, layout: ParameterLayout, initScheme: InitScheme = .torch) throws -> GPT2Model {
        if let url = base.file {
            return try GPT2Model(layout: layout, params: try loadHFWeights(from: url, config: layout.config, head: layout.head, headInitSeed: seed))
        }
        return try GPT2Model(layout: layout) { randomWeights(layout: layout, seed: seed, scheme: initScheme, into: $0) }
    }

    /// The identity and file of the base weights without their parameters (empty): what a run
    /// over an already quantized base checks the quantized file against.
    public static func describe(_ s: BaseModelChoice, seed: UInt64, layout: ParameterLayout, initScheme: InitScheme = .torch) throws -> BaseWeights {
        if s.weights == .random {
            // The torch identity stays as it was, so older classifier resume states still match.
            let identity = "random seed \(seed)" + (initScheme == .torch ? "" : " init \(initScheme.rawValue)")
            return BaseWeights(parameters: [], identity: identity, file: nil)
        }
        let url = try resolveWeightsFile(URL(fileURLWithPath: s.weightsFile ?? ""), modelName: layout.config.name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError("the pretrained weights file is missing", location: url.path,
                                hint: "fetch it with `fetch --config weights.yaml --out data/weights --only \(layout.config.name)`, or train offline with --weights random (pipeline: --set train.weights=random)")
        }
        return BaseWeights(parameters: [], identity: "\(url.lastPathComponent) sha256 " + (try FileHash.sha256(of: url)), file: url)
    }

    /// `fetch --config weights.yaml` puts each size in its own folder (`data/weights/gpt2-medium/
    /// model.safetensors`), so a weights path may name that parent folder: the model size then
    /// decides which file is read. A folder resolves to its own `model.safetensors` when it has
    /// one, else to `<model name>/model.safetensors` inside it; a file is returned as is. A folder
    /// holding neither is an error naming what was looked for.
    public static func resolveWeightsFile(_ url: URL, modelName: String) throws -> URL {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else { return url }
        let own = url.appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: own.path) { return own }
        let perSize = url.appendingPathComponent(modelName).appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: perSize.path) { return perSize }
        // The loader explains why a sharded checkpoint is refused.
        if fm.fileExists(atPath: url.appendingPathComponent("model.safetensors.index.json").path) { return url }
        throw PipelineError("no pretrained weights for \(modelName) in this folder (looked for model.safetensors and \(modelName)/model.safetensors)",
                            location: url.path,
                            hint: "fetch them with `fetch --config weights.yaml --out \(url.path) --only \(modelName)` (pipeline: the weights stage with train.weights=pretrained), or pass the file itself")
    }
}

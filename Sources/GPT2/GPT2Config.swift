import ArtifactKit
import Foundation

/// The shape of a GPT-2 model, named as in the book's `BASE_CONFIG` / `model_configs`.
public struct GPT2Config: Codable, Equatable, Sendable {
    public var name: String
    public var vocabSize: Int
    public var contextLength: Int
    public var embDim: Int
    public var nHeads: Int
    public var nLayers: Int
    /// Dropout probability used during training (embeddings, attention weights, residual branches).
    public var dropRate: Float
    /// Whether the query/key/value projection has a bias (true for OpenAI's weights).
    public var qkvBias: Bool

    public init(name: String, vocabSize: Int = 50257, contextLength: Int = 1024, embDim: Int, nHeads: Int,
                nLayers: Int, dropRate: Float = 0.0, qkvBias: Bool = true) {
        self.name = name
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.embDim = embDim
        self.nHeads = nHeads
        self.nLayers = nLayers
        self.dropRate = dropRate
        self.qkvBias = qkvBias
    }

    public var headDim: Int { embDim / nHeads }

    public static let small = GPT2Config(name: "gpt2-small", embDim: 768, nHeads: 12, nLayers: 12)
    public static let medium = GPT2Config(name: "gpt2-medium", embDim: 1024, nHeads: 16, nLayers: 24)
    public static let large = GPT2Config(name: "gpt2-large", embDim: 1280, nHeads: 20, nLayers: 36)
    public static let xl = GPT2Config(name: "gpt2-xl", embDim: 1600, nHeads: 25, nLayers: 48)
    public static let presets: [GPT2Config] = [small, medium, large, xl]

    /// Looks a preset up by name ("gpt2-small" or "124M", ...).
    public static func named(_ name: String) throws -> GPT2Config {
        let aliases = ["124M": "gpt2-small", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl",
                       "gpt2": "gpt2-small"]
        let key = aliases[name] ?? name
        guard let c = presets.first(where: { $0.name == key }) else {
            throw PipelineError("unknown model size \"\(name)\"",
                                hint: "use one of: " + presets.map(\.name).joined(separator: ", "))
        }
        return c
    }

    /// Checks the numbers fit together; a config from a file may not.
    public func validate() throws {
        guard vocabSize > 0, contextLength > 0, embDim > 0, nHeads > 0, nLayers > 0 else {
            throw PipelineError("model config \(name): sizes must be positive")
        }
        guard embDim % nHeads == 0 else {
            throw PipelineError("model config \(name): emb_dim \(embDim) is not divisible by n_heads \(nHeads)")
        }
        guard (0..<1).contains(dropRate) else {
            throw PipelineError("model config \(name): drop_rate \(dropRate) must be in [0, 1)")
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, vocabSize = "vocab_size", contextLength = "context_length", embDim = "emb_dim",
             nHeads = "n_heads", nLayers = "n_layers", dropRate = "drop_rate", qkvBias = "qkv_bias"
    }
}

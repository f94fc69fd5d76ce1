import ArtifactKit
import Foundation
import GPT2
import GPT2Weights

/// A Hugging Face GPT-2 folder read back with our own loaders (`inferConfig`,
/// `loadHFWeights`): what `export --to hf` wrote must come back bit for bit.
public struct HFModelFolder {
    public var layout: ParameterLayout
    public var params: [Float]
    /// `lm_head.weight` [V, C] when config.json says the head is not tied to wte.
    public var untiedHead: [Float]?

    public init(_ url: URL) throws {
        let config = try inferConfig(fromSafetensors: url)
        let json = try Self.configJSON(url)
        let file = try SafetensorsFile(contentsOf: url.appendingPathComponent("model.safetensors"))
        let head: ModelHead = file.info("score.weight").map { .classifier(numClasses: $0.shape[0]) } ?? .languageModel
        layout = ParameterLayout(config: config, head: head)
        params = try loadHFWeights(from: url, config: config, head: head)
        if case .bool(false)? = json["tie_word_embeddings"] {
            guard file.info("lm_head.weight") != nil else {
                throw PipelineError("config.json says the head is untied but model.safetensors has no lm_head.weight", location: url.path)
            }
            untiedHead = try file.floats("lm_head.weight")
        }
    }

    static func configJSON(_ url: URL) throws -> JSONValue {
        let path = url.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: path), let json = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw PipelineError("cannot read config.json", location: path.path, hint: "pass a folder written by `export --to hf`")
        }
        return json
    }
}

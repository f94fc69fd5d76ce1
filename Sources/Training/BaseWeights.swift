import ArtifactKit
import Foundation
import GPT2

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
    /// from torch's but not their distribution.
    public static func load(settings s: TrainingSettings, layout: ParameterLayout) throws -> BaseWeights {
        if s.weights == "random" {
            return BaseWeights(parameters: randomWeights(layout: layout, seed: s.seed), identity: "random seed \(s.seed)", file: nil)
        }
        let url = URL(fileURLWithPath: s.weightsFile ?? "")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError("the pretrained weights file is missing", location: url.path,
                                hint: "fetch it with `fetch --config weights.yaml --out data/weights`, or train offline with --weights random (pipeline: --set train.weights=random)")
        }
        let params = try loadHFWeights(from: url, config: layout.config, head: layout.head, headInitSeed: s.seed)
        return BaseWeights(parameters: params, identity: "\(url.lastPathComponent) sha256 " + (try FileHash.sha256(of: url)), file: url)
    }
}

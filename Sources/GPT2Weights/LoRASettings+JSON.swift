import ArtifactKit
import GPT2

extension LoRASettings {
    /// The params a LoRA run adds to its manifest (and to what a resume state must match).
    public var asJSON: [String: JSONValue] {
        ["lora_rank": .int(rank), "lora_alpha": .double(Double("\(alpha)") ?? Double(alpha))]
    }
}

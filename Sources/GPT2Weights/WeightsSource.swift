/// Where the base weights come from (param `train.weights`).
public enum WeightsSource: String, Codable, CaseIterable, Sendable {
    /// OpenAI's GPT-2 in Hugging Face's safetensors (`train.weights_file`).
    case pretrained
    /// A seeded random initialisation (offline runs; the book's row 10).
    case random
}

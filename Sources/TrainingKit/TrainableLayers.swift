import ArtifactKit
import Foundation

/// Which parameters fine-tuning updates (the book's section 6.5 and its bonus experiments).
public enum TrainableLayers: String, CaseIterable, Codable, Sendable {
    /// Only the new classification head.
    case lastLayer = "last_layer"
    /// The book's default: the last transformer block, the final LayerNorm and the head.
    case lastBlock = "last_block"
    /// The last two transformer blocks, the final LayerNorm and the head.
    case lastTwoBlocks = "last_two_blocks"
    /// Every parameter, embeddings included.
    case all
    /// LoRA adapters on every Linear layer, the head included, everything else frozen (appendix E).
    case lora

    /// The lowest transformer block whose weights change, or nil when no block trains (head only).
    /// Everything below it is frozen, so the hidden states entering it never change.
    public func lowestTrainableBlock(nLayers: Int) -> Int? {
        switch self {
        case .lastLayer: return nil
        case .lastBlock: return nLayers - 1
        case .lastTwoBlocks: return max(0, nLayers - 2)
        case .all, .lora: return 0
        }
    }

    /// Whether the token and position embeddings train too.
    public var trainsEmbeddings: Bool { self == .all }
}

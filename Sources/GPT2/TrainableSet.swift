import ArtifactKit
import Foundation

/// Which parameter tensors receive gradients and optimizer updates, by Hugging Face name.
///
/// Backpropagation stops below the lowest trainable tensor: frozen blocks underneath are run
/// forward without keeping their activations, and no activation gradient is computed for them.
public struct TrainableSet: Equatable, Sendable {
    public var names: Set<String>
    /// Whether the attached LoRA adapters train (all of them; see LoRA.swift).
    public var adapters: Bool

    public init(names: Set<String>, adapters: Bool = false) {
        self.names = names
        self.adapters = adapters
    }

    /// LoRA fine-tuning (the book's appendix E): every original parameter frozen, only the
    /// attached adapters train.
    public static let loraAdapters = TrainableSet(names: [], adapters: true)

    public func contains(_ name: String) -> Bool { names.contains(name) }

    /// Every tensor (chapter 7's full fine-tuning, and pretraining).
    public static func all(_ layout: ParameterLayout) -> TrainableSet {
        TrainableSet(names: Set(layout.tensors.map(\.name)))
    }

    /// The last `n` transformer blocks, the final LayerNorm and the classifier head when the layout
    /// has one. With the tied language-model head, `wte` is NOT included: training it would mean
    /// training the input embedding too and so backpropagating through every block. (The chapter-6
    /// classifier picks its trainable part with `TrainableLayers` in the Classification module.)
    public static func lastBlocks(_ n: Int, _ layout: ParameterLayout) -> TrainableSet {
        let first = layout.config.nLayers - n
        let names = Set(layout.tensors.filter { t in
            if let b = t.block { return b >= first }
            return t.name.hasPrefix("ln_f.") || t.name.hasPrefix("out_head.")
        }.map(\.name))
        return TrainableSet(names: names)
    }

    /// Only the output head (the book's `trainable_layers = "last_layer"`): `out_head.*` for a
    /// classifier, the tied `wte.weight` for the language model.
    public static func headOnly(_ layout: ParameterLayout) -> TrainableSet {
        switch layout.head {
        case .classifier: return TrainableSet(names: ["out_head.weight", "out_head.bias"])
        case .languageModel: return TrainableSet(names: ["wte.weight"])
        }
    }

    /// Checks every name exists in the layout and the set is not empty.
    public func validate(against layout: ParameterLayout) throws {
        guard !names.isEmpty || adapters else {
            throw PipelineError("no trainable parameters", hint: "choose at least the output head as trainable")
        }
        for n in names.sorted() where layout.spec(named: n) == nil {
            throw PipelineError("trainable tensor \"\(n)\" is not a parameter of model \(layout.config.name)")
        }
    }
}

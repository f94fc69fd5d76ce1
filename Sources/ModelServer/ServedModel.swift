import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Tokenizer
import Instruct

/// The one model a server answers with, loaded once from a `train` or `train instruct` output
/// folder by the same loaders `evaluate` uses (`TextClassifier`, `InstructEvaluateStage.loadModel`).
public enum ServedModel {
    case classifier(TextClassifier)
    case instruct(InstructEvaluateStage.Trained)

    /// Reads the folder's manifest to tell which stage wrote it, then loads that kind of model.
    public static func load(from dir: URL) throws -> ServedModel {
        let manifestURL = dir.appendingPathComponent(Manifest.fileName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw PipelineError("no manifest.json: not a `train` or `train instruct` output folder", location: dir.path,
                                hint: "pass --model the --out folder of `train` (a classifier) or `train instruct` (an instruction model)")
        }
        let manifest = try Manifest.read(from: manifestURL)
        switch manifest.format {
        case ClassifierTrainStage.manifestFormat:
            return .classifier(try TextClassifier(modelDirectory: dir) { try GPT2Backend(layout: $0, parameters: $1) })
        case InstructTrainStage.manifestFormat:
            return .instruct(try InstructEvaluateStage.loadModel(dir))
        default:
            throw PipelineError("manifest.json says \"\(manifest.format)\", written by `\(manifest.tool)`: not a trained model", location: dir.path,
                                hint: "pass --model the --out folder of `train` or `train instruct`")
        }
    }

    /// "classifier" or "instruct": what the page and /health report.
    public var kind: String {
        switch self {
        case .classifier: return "classifier"
        case .instruct: return "instruct"
        }
    }

    public var config: GPT2Config {
        switch self {
        case .classifier(let c): return c.checkpoint.layout.config
        case .instruct(let t): return t.model.config
        }
    }

    /// Checks the tokenizer cannot produce ids the model has no embedding for.
    public func check(tokenizer: GPT2BPETokenizer, vocabDirectory: URL) throws {
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw PipelineError("the tokenizer has \(tokenizer.vocabularySize) tokens, the model only \(config.vocabSize)",
                                location: vocabDirectory.path, hint: "use the GPT-2 vocabulary the model was trained with (--vocab)")
        }
    }
}

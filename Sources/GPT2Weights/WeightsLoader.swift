import ArtifactKit
import Foundation
import GPT2

/// What a weights file looks like, inferred from its tensor names and shapes; used to say
/// "this file is gpt2-medium" when a config does not match it.
public struct WeightsShape: Equatable, Sendable, CustomStringConvertible {
    public var nLayers: Int
    public var embDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var qkvBias: Bool

    public var description: String {
        var s = "n_layers \(nLayers), emb_dim \(embDim), vocab_size \(vocabSize), context_length \(contextLength)"
        if !qkvBias { s += ", no qkv bias" }
        if let p = GPT2Config.presets.first(where: { matches($0) }) { s += " (like \(p.name))" }
        return s
    }

    /// True when the config has these sizes (n_heads cannot be seen in weights).
    public func matches(_ c: GPT2Config) -> Bool {
        c.nLayers == nLayers && c.embDim == embDim && c.vocabSize == vocabSize
            && c.contextLength == contextLength && c.qkvBias == qkvBias
    }

    static func of(_ config: GPT2Config) -> WeightsShape {
        WeightsShape(nLayers: config.nLayers, embDim: config.embDim, vocabSize: config.vocabSize,
                     contextLength: config.contextLength, qkvBias: config.qkvBias)
    }
}

/// A set of named tensors from any source (safetensors, TF checkpoint), already renamed to the
/// HF names of `ParameterLayout`, that `assembleParameters` turns into the flat buffer.
struct NamedTensorSource {
    /// HF name -> (dtype, shape as the layout expects it after any squeeze)
    var tensors: [String: (dtype: String, shape: [Int])]
    /// How the file spells the tensor (for messages), by HF name.
    var originalName: [String: String]
    /// Fills the destination (exactly the tensor's element count) with the tensor's values.
    var read: (String, UnsafeMutableBufferPointer<Float>) throws -> Void
    var location: String
    /// What to tell a user whose file does not fit.
    var hint: String
    /// Tensors the file leaves out because they are zero: `out_head.bias` of a
    /// GPT2ForSequenceClassification file, whose `score` Linear has no bias.
    var zeroTensors: Set<String> = []

    /// Infers the model sizes from the tensors, or nil when the file is not GPT-2-like at all.
    func inferShape() -> WeightsShape? {
        guard let wte = tensors["wte.weight"]?.shape, wte.count == 2,
              let wpe = tensors["wpe.weight"]?.shape, wpe.count == 2 else { return nil }
        var layers = 0
        for name in tensors.keys where name.hasPrefix("h.") {
            let parts = name.split(separator: ".")
            if parts.count > 2, let i = Int(parts[1]) { layers = max(layers, i + 1) }
        }
        return WeightsShape(nLayers: layers, embDim: wte[1], vocabSize: wte[0], contextLength: wpe[0],
                            qkvBias: tensors.keys.contains { $0.hasPrefix("h.") && $0.hasSuffix(".attn.c_attn.bias") })
    }
}

/// Builds the flat buffer for `layout` from `source`, checking the exact tensor set, shapes,
/// dtypes and finiteness. Classifier-head tensors absent from the source are initialised randomly
/// with `headInitSeed`; every other missing tensor is an error.
/// With `readValues` false only names, shapes and dtypes are checked and an empty array is returned.
func assembleParameters(_ source: NamedTensorSource, layout: ParameterLayout, headInitSeed: UInt64,
                        ignored: Set<String>, readValues: Bool = true) throws -> [Float] {
    let config = layout.config
    func fail(_ message: String, hint: String? = nil) -> PipelineError {
        PipelineError(message, location: source.location, hint: hint ?? source.hint)
    }
    let fileShape = source.inferShape()
    let wanted = WeightsShape.of(config)
    if let fileShape, fileShape != wanted {
        throw fail("the weights do not match model config \(config.name): the config has \(wanted), but the file has \(fileShape)",
                   hint: "choose the model size that matches the file (or the file that matches the size)")
    }

    let headNames: Set<String> = ["out_head.weight", "out_head.bias"]
    let expected = Set(layout.tensors.map(\.name))
    let missing = layout.tensors.map(\.name).filter { source.tensors[$0] == nil && !headNames.contains($0) && !source.zeroTensors.contains($0) }
    if !missing.isEmpty {
        let list = missing.prefix(5).map { "\"\(source.originalName[$0] ?? $0)\"" }.joined(separator: ", ")
        throw fail("missing tensor\(missing.count > 1 ? "s" : "") \(list)\(missing.count > 5 ? " and \(missing.count - 5) more" : "") (\(missing.count) of \(expected.count) expected for \(config.name))")
    }
    let unexpected = source.tensors.keys.filter { !expected.contains($0) && !ignored.contains($0) }.sorted()
    if !unexpected.isEmpty {
        let list = unexpected.prefix(5).map { "\"\(source.originalName[$0] ?? $0)\"" }.joined(separator: ", ")
        throw fail("unexpected tensor\(unexpected.count > 1 ? "s" : "") \(list)\(unexpected.count > 5 ? " and \(unexpected.count - 5) more" : "") for \(config.name) with \(layout.head)")
    }
    let presentHead = headNames.filter { source.tensors[$0] != nil || source.zeroTensors.contains($0) }
    if !presentHead.isEmpty && presentHead.count != headNames.count {
        throw fail("the file has \(presentHead.sorted().joined(separator: ", ")) but not the rest of the classifier head")
    }

    var buffer = [Float](repeating: 0, count: readValues ? layout.totalCount : 0)
    for spec in layout.tensors {
        guard let info = source.tensors[spec.name] else {
            guard readValues, !source.zeroTensors.contains(spec.name) else { continue }
            // Only the classifier head may be absent (checked above): a new head for fine-tuning.
            randomInitialize(spec, config: config, seed: headInitSeed, into: &buffer)
            continue
        }
        let shown = source.originalName[spec.name] ?? spec.name
        guard ["F32", "F16", "BF16"].contains(info.dtype) else {
            throw fail("tensor \"\(shown)\" has dtype \(info.dtype); parameters must be F32, F16 or BF16")
        }
        guard info.shape == spec.shape else {
            var why = ""
            if info.shape.count == 2, info.shape == spec.shape.reversed() {
                why = spec.name.hasPrefix("out_head") ? " (transposed: out_head is stored [out, in] like nn.Linear)"
                    : " (transposed: GPT-2's Conv1D weights are stored [in, out])"
            }
            throw fail("tensor \"\(shown)\" has shape \(info.shape), expected \(spec.shape)\(why)")
        }
        guard readValues else { continue }
        try buffer.withUnsafeMutableBufferPointer { all in
            let dst = UnsafeMutableBufferPointer(rebasing: all[spec.range])
            try source.read(spec.name, dst)
            if let bad = dst.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor \"\(shown)\" holds a non-finite value (\(dst[bad])) at flat index \(bad - dst.startIndex)",
                           hint: "the weights are damaged (or a training run diverged); use another file")
            }
        }
    }
    return buffer
}

/// Resolves a directory holding `model.safetensors` to that file; a file is returned as is.
func resolveSafetensorsURL(_ url: URL) throws -> URL {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
        throw PipelineError("weights file not found", location: url.path,
                            hint: "run the fetch stage first, or pass the path of model.safetensors")
    }
    guard isDir.boolValue else { return url }
    let file = url.appendingPathComponent("model.safetensors")
    if FileManager.default.fileExists(atPath: file.path) { return file }
    if FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors.index.json").path) {
        throw PipelineError("sharded safetensors (model.safetensors.index.json) are not supported", location: url.path,
                            hint: "GPT-2 files are a single model.safetensors; download that one")
    }
    throw PipelineError("folder has no model.safetensors", location: url.path)
}

/// Renames the tensors of a Hugging Face GPT-2 safetensors file to the layout's names: strips a
/// `transformer.` prefix (GPT2LMHeadModel.save_pretrained) and sets aside the names a GPT-2 file
/// may carry that are not parameters: the causal-mask buffers `h.{i}.attn.bias` /
/// `h.{i}.attn.masked_bias` and `lm_head.weight` (tied to wte, so it must have wte's shape).
/// GPT2ForSequenceClassification's head `score.weight` [K, C] is read as `out_head.weight`, with
/// a zero `out_head.bias` (its `score` Linear has none).
func hfSource(_ file: SafetensorsFile) throws -> (NamedTensorSource, ignored: Set<String>) {
    let path = file.url.path
    let names = file.tensorNames
    let prefixed = names.filter { $0.hasPrefix("transformer.") }
    let usePrefix = !prefixed.isEmpty
    var tensors: [String: (dtype: String, shape: [Int])] = [:]
    var original: [String: String] = [:]
    var ignored = Set<String>()
    for name in names {
        var key = name
        if name == "lm_head.weight" {
            key = name
        } else if name == "score.weight" {
            key = "out_head.weight"
        } else if usePrefix {
            guard name.hasPrefix("transformer.") else {
                throw PipelineError("tensor \"\(name)\" lacks the \"transformer.\" prefix that the file's other tensors have",
                                    location: path, hint: "the file mixes two naming schemes; it is not a GPT-2 checkpoint")
            }
            key = String(name.dropFirst("transformer.".count))
        }
        guard tensors[key] == nil else {
            throw PipelineError("tensor \"\(key)\" appears twice (with and without the \"transformer.\" prefix)", location: path)
        }
        let info = file.info(name)!
        tensors[key] = info
        original[key] = name
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts[0] == "h", Int(parts[1]) != nil, parts[2] == "attn",
           parts[3] == "bias" || parts[3] == "masked_bias" {
            ignored.insert(key)
        }
    }
    if let lm = tensors["lm_head.weight"] {
        if let wte = tensors["wte.weight"], lm.shape != wte.shape {
            throw PipelineError("tensor \"lm_head.weight\" has shape \(lm.shape) but wte.weight has \(wte.shape); GPT-2's output head is tied to wte",
                                location: path)
        }
        ignored.insert("lm_head.weight")
    }
    // The mask buffers must not count as layers when inferring the file's shape.
    var params = tensors
    for name in ignored { params.removeValue(forKey: name) }
    let source = NamedTensorSource(
        tensors: params, originalName: original,
        read: { try file.readFloats(original[$0]!, into: $1) },
        location: path,
        hint: "the file is not GPT-2 weights in Hugging Face layout for this config",
        zeroTensors: original["out_head.weight"] == "score.weight" ? ["out_head.bias"] : [])
    return (source, ignored)
}

/// Loads Hugging Face GPT-2 weights (`model.safetensors` as downloaded from
/// openai-community/gpt2, or a folder holding it) into the flat buffer of
/// `ParameterLayout(config:head:)`. A classifier head the file does not hold is initialised like
/// nn.Linear with `headInitSeed`.
public func loadHFWeights(from url: URL, config: GPT2Config, head: ModelHead, headInitSeed: UInt64 = 123) throws -> [Float] {
    try config.validate()
    let file = try SafetensorsFile(contentsOf: resolveSafetensorsURL(url))
    let (source, ignored) = try hfSource(file)
    return try assembleParameters(source, layout: ParameterLayout(config: config, head: head),
                                  headInitSeed: headInitSeed, ignored: ignored)
}

/// The model sizes a Hugging Face GPT-2 safetensors file holds. n_heads is not visible in
/// weights: it is read from `config.json` beside the file when present (`n_head`), else taken
/// from the preset of the same size, else emb_dim / 64 (every GPT-2 size uses 64-wide heads).
public func inferConfig(fromSafetensors url: URL) throws -> GPT2Config {
    let fileURL = try resolveSafetensorsURL(url)
    let file = try SafetensorsFile(contentsOf: fileURL)
    let (source, _) = try hfSource(file)
    guard let shape = source.inferShape(), shape.nLayers > 0 else {
        throw PipelineError("cannot infer a GPT-2 config: the file has no wte.weight / wpe.weight / h.0.* tensors",
                            location: fileURL.path, hint: "is this a GPT-2 model.safetensors?")
    }
    var nHeads: Int?
    let configJSON = fileURL.deletingLastPathComponent().appendingPathComponent("config.json")
    if let data = try? Data(contentsOf: configJSON),
       let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
       let n = obj["n_head"] as? Int {
        nHeads = n
    }
    let preset = GPT2Config.presets.first(where: { shape.matches($0) })
    let heads = nHeads ?? preset?.nHeads ?? max(1, shape.embDim / 64)
    let name = (preset != nil && preset!.nHeads == heads) ? preset!.name : "gpt2-custom-\(shape.nLayers)x\(shape.embDim)"
    let config = GPT2Config(name: name, vocabSize: shape.vocabSize, contextLength: shape.contextLength,
                            embDim: shape.embDim, nHeads: heads, nLayers: shape.nLayers, qkvBias: shape.qkvBias)
    try config.validate()
    return config
}

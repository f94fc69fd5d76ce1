import ArtifactKit
import Foundation
import GPT2

/// Fine-tuned weights on disk: a safetensors file with the Hugging Face names of
/// `ParameterLayout` (so `safetensors.safe_open` and `GPT2Model.load_state_dict` read it) and a
/// `__metadata__` object that says what the file is. See docs/weights.md.
public enum CheckpointFormat {
    public static let format = "llm-finetune-checkpoint"
    public static let version = "1"

    /// Keys written by `saveCheckpoint` itself; a caller may not set them.
    public enum Key {
        public static let format = "format"
        public static let formatVersion = "format_version"
        /// GPT2Config as JSON (the same keys as the book's config dict: emb_dim, n_layers, ...).
        public static let config = "config"
        /// ModelHead as JSON: {"languageModel":{}} or {"classifier":{"numClasses":2}}.
        public static let head = "head"
        /// sha256 of the parameters' little-endian float32 bytes in layout order.
        public static let paramsSHA256 = "params_sha256"
        public static let paramCount = "param_count"
        /// LoRA checkpoints only: the adapters' rank and alpha, and the sha256 of their floats.
        public static let loraRank = "lora_rank"
        public static let loraAlpha = "lora_alpha"
        public static let loraSHA256 = "lora_sha256"
    }

    /// Keys the train stage is expected to pass (free text, not interpreted when loading).
    public enum CallerKey {
        /// Where the starting weights came from, e.g. "openai-community/gpt2 model.safetensors sha256 ..." or "random seed 123".
        public static let baseModel = "base_model"
        /// What was trained: a setting ("last-block+final-norm+head") or a JSON list of tensor names.
        public static let trainable = "trainable"
    }

    static let reserved: Set<String> = [Key.format, Key.formatVersion, Key.config, Key.head, Key.paramsSHA256, Key.paramCount,
                                        Key.loraRank, Key.loraAlpha, Key.loraSHA256]
}

/// sha256 (hex) of the parameters' float32 bytes, as stored in checkpoints.
public func parametersSHA256(_ params: [Float]) -> String {
    params.withUnsafeBytes { raw in
        guard let base = raw.baseAddress, raw.count > 0 else { return FileHash.sha256(of: Data()) }
        return FileHash.sha256(of: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: raw.count, deallocator: .none))
    }
}

func encodeJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try! encoder.encode(value), as: UTF8.self)
}

/// Writes `params` (laid out as `layout`) atomically as a safetensors checkpoint. `metadata` adds
/// the caller's keys (see `CheckpointFormat.CallerKey`); the reserved keys are filled in here.
/// With `lora`, the base weights are stored unmerged under their usual names and the adapters as
/// extra tensors `<linear>.lora_A` [in, rank] / `<linear>.lora_B` [rank, out] (LoRALayout's
/// names), with `lora_rank`, `lora_alpha` and `lora_sha256` in the metadata.
public func saveCheckpoint(params: [Float], layout: ParameterLayout, metadata: [String: String], to url: URL,
                           lora: LoRAWeights? = nil) throws {
    guard params.count == layout.totalCount else {
        throw PipelineError("cannot save checkpoint: \(params.count) parameters given, the layout of \(layout.config.name) has \(layout.totalCount)",
                            location: url.path)
    }
    try saveCheckpoint(tensor: { Array(params[$0.range]) }, layout: layout, metadata: metadata, to: url, lora: lora)
}

/// `saveCheckpoint` with the base tensors made one at a time by `tensor` (twice: once for the
/// checks and the hash, once for the file), so a large model is never copied whole.
public func saveCheckpoint(tensor: @escaping (TensorSpec) -> [Float], layout: ParameterLayout, metadata: [String: String], to url: URL,
                           lora: LoRAWeights? = nil) throws {
    if let clash = metadata.keys.filter({ CheckpointFormat.reserved.contains($0) }).sorted().first {
        throw PipelineError("checkpoint metadata key \"\(clash)\" is reserved (written by saveCheckpoint itself)", location: url.path)
    }
    var hash = StreamingSHA256()
    for spec in layout.tensors {
        let values = tensor(spec)
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw PipelineError("refusing to save a checkpoint with a non-finite parameter (\(values[bad]) in \(spec.name))",
                                location: url.path, hint: "training diverged; lower the learning rate")
        }
        values.withUnsafeBytes { hash.update($0) }
    }
    var meta = metadata
    meta[CheckpointFormat.Key.format] = CheckpointFormat.format
    meta[CheckpointFormat.Key.formatVersion] = CheckpointFormat.version
    meta[CheckpointFormat.Key.config] = encodeJSON(layout.config)
    meta[CheckpointFormat.Key.head] = encodeJSON(layout.head)
    meta[CheckpointFormat.Key.paramsSHA256] = hash.hexDigest()
    meta[CheckpointFormat.Key.paramCount] = String(layout.totalCount)
    var sources = layout.tensors.map { spec in SafetensorsWriter.TensorSource(name: spec.name, shape: spec.shape) { tensor(spec) } }
    if let lora {
        guard lora.layout == (try LoRALayout(layout: layout, rank: lora.settings.rank)) else {
            throw PipelineError("cannot save checkpoint: the LoRA adapters do not belong to this model", location: url.path)
        }
        if lora.values.contains(where: { !$0.isFinite }) {
            throw PipelineError("refusing to save a checkpoint with a non-finite LoRA adapter value", location: url.path,
                                hint: "training diverged; lower the learning rate")
        }
        meta[CheckpointFormat.Key.loraRank] = String(lora.settings.rank)
        meta[CheckpointFormat.Key.loraAlpha] = "\(lora.settings.alpha)"
        meta[CheckpointFormat.Key.loraSHA256] = parametersSHA256(lora.values)
        for t in lora.layout.tensors {
            let n = t.shape[0] * t.shape[1]
            sources.append(.init(name: t.name, shape: t.shape) { Array(lora.values[t.offset..<(t.offset + n)]) })
        }
    }
    try SafetensorsWriter.write(sources: sources, metadata: meta, to: url)
}

/// Reads a checkpoint written by `saveCheckpoint` without LoRA adapters (one with adapters is an
/// error here: use `loadCheckpointWithLoRA`).
public func loadCheckpoint(from url: URL) throws -> (layout: ParameterLayout, params: [Float], metadata: [String: String]) {
    let c = try loadCheckpointWithLoRA(from: url)
    guard c.lora == nil else {
        throw PipelineError("the checkpoint holds LoRA adapters (rank \(c.lora!.settings.rank)); this reader takes plain checkpoints only",
                            location: url.path, hint: "load it with loadCheckpointWithLoRA and attach the adapters")
    }
    return (c.layout, c.params, c.metadata)
}

/// A checkpoint: base parameters, metadata, and the LoRA adapters when it has them.
public struct LoadedCheckpoint {
    public var layout: ParameterLayout
    public var params: [Float]
    public var metadata: [String: String]
    public var lora: LoRAWeights?
}

/// Reads a checkpoint written by `saveCheckpoint`: the config and head come from its metadata,
/// the tensor set must be exactly the layout's (plus the LoRA layout's when the metadata has
/// `lora_rank`), and the parameters (and adapters) must hash to their recorded sha256.
public func loadCheckpointWithLoRA(from url: URL) throws -> LoadedCheckpoint {
    let file = try SafetensorsFile(contentsOf: url)
    let path = url.path
    let meta = file.metadata
    let layout = try checkpointLayout(meta, path: path)
    let (config, head) = (layout.config, layout.head)
    if let missing = layout.tensors.map(\.name).first(where: { file.info($0) == nil }) {
        throw PipelineError("checkpoint lacks tensor \"\(missing)\" required by its config \(config.name) / \(head)", location: path)
    }
    let lora = try readLoRAAdapters(file, meta, layout: layout, path: path)
    let loraNames = Set(lora?.layout.tensors.map(\.name) ?? [])
    if let extra = file.tensorNames.first(where: { layout.spec(named: $0) == nil && !loraNames.contains($0) }) {
        throw PipelineError("checkpoint has unexpected tensor \"\(extra)\" for its config \(config.name) / \(head)", location: path)
    }
    let params = try readBaseParameters(file, meta, layout: layout, path: path)
    return LoadedCheckpoint(layout: layout, params: params, metadata: meta, lora: lora)
}

/// The layout named by a checkpoint's metadata: its format and version are checked, its config
/// and head decoded.
private func checkpointLayout(_ meta: [String: String], path: String) throws -> ParameterLayout {
    guard meta[CheckpointFormat.Key.format] == CheckpointFormat.format else {
        let found = meta[CheckpointFormat.Key.format].map { "\"\($0)\"" } ?? "none"
        throw PipelineError("not an llm-finetune checkpoint: __metadata__ format is \(found), expected \"\(CheckpointFormat.format)\"",
                            location: path, hint: "pretrained Hugging Face weights are loaded with loadHFWeights instead")
    }
    guard meta[CheckpointFormat.Key.formatVersion] == CheckpointFormat.version else {
        throw PipelineError("checkpoint format_version \(meta[CheckpointFormat.Key.formatVersion] ?? "missing") is not supported (this build reads \(CheckpointFormat.version))",
                            location: path, hint: "rerun the train stage with this version of the tools")
    }
    let config: GPT2Config
    let head: ModelHead
    do {
        config = try JSONDecoder().decode(GPT2Config.self, from: Data((meta[CheckpointFormat.Key.config] ?? "").utf8))
        head = try JSONDecoder().decode(ModelHead.self, from: Data((meta[CheckpointFormat.Key.head] ?? "").utf8))
    } catch {
        throw PipelineError("checkpoint metadata \"config\" / \"head\" is missing or malformed: \(error)", location: path)
    }
    try config.validate()
    return ParameterLayout(config: config, head: head)
}

/// The LoRA adapters when the metadata has `lora_rank` (nil otherwise): every tensor of the LoRA
/// layout must be there as F32, and the values must hash to `lora_sha256`.
private func readLoRAAdapters(_ file: SafetensorsFile, _ meta: [String: String], layout: ParameterLayout,
                              path: String) throws -> LoRAWeights? {
    guard let rankText = meta[CheckpointFormat.Key.loraRank] else { return nil }
    guard let rank = Int(rankText), let alpha = meta[CheckpointFormat.Key.loraAlpha].flatMap(Float.init) else {
        throw PipelineError("checkpoint metadata lora_rank / lora_alpha is malformed (\(rankText), \(meta[CheckpointFormat.Key.loraAlpha] ?? "missing"))",
                            location: path)
    }
    let settings = LoRASettings(rank: rank, alpha: alpha)
    try settings.validate(rankLocation: path, alphaLocation: path)
    let loraLayout = try LoRALayout(layout: layout, rank: rank)
    var values = [Float](repeating: 0, count: loraLayout.totalCount)
    for t in loraLayout.tensors {
        guard let info = file.info(t.name) else {
            throw PipelineError("checkpoint lacks LoRA tensor \"\(t.name)\" (rank \(rank))", location: path)
        }
        guard info.shape == t.shape, info.dtype == "F32" else {
            throw PipelineError("checkpoint LoRA tensor \"\(t.name)\" is \(info.dtype) \(info.shape), expected F32 \(t.shape)", location: path)
        }
        let n = t.shape[0] * t.shape[1]
        try values.withUnsafeMutableBufferPointer {
            try file.readFloats(t.name, into: UnsafeMutableBufferPointer(rebasing: $0[t.offset..<(t.offset + n)]))
        }
    }
    guard parametersSHA256(values) == meta[CheckpointFormat.Key.loraSHA256] else {
        throw PipelineError("checkpoint LoRA adapters do not match their recorded hash (lora_sha256)", location: path,
                            hint: "the file was modified or damaged; rerun the train stage")
    }
    return try LoRAWeights(settings: settings, layout: loraLayout, values: values)
}

/// The base parameters in layout order: every tensor F32 of the layout's shape, all together
/// hashing to `params_sha256`.
private func readBaseParameters(_ file: SafetensorsFile, _ meta: [String: String], layout: ParameterLayout,
                                path: String) throws -> [Float] {
    var params = [Float](repeating: 0, count: layout.totalCount)
    for spec in layout.tensors {
        let info = file.info(spec.name)!
        guard info.shape == spec.shape else {
            throw PipelineError("checkpoint tensor \"\(spec.name)\" has shape \(info.shape), expected \(spec.shape)", location: path)
        }
        guard info.dtype == "F32" else {
            throw PipelineError("checkpoint tensor \"\(spec.name)\" has dtype \(info.dtype), expected F32", location: path)
        }
        try params.withUnsafeMutableBufferPointer { try file.readFloats(spec.name, into: UnsafeMutableBufferPointer(rebasing: $0[spec.range])) }
    }
    if let want = meta[CheckpointFormat.Key.paramsSHA256] {
        let got = parametersSHA256(params)
        guard got == want else {
            throw PipelineError("checkpoint parameters do not match their recorded hash (params_sha256 \(want), computed \(got))",
                                location: path, hint: "the file was modified or damaged; rerun the train stage")
        }
    } else {
        throw PipelineError("checkpoint metadata lacks params_sha256", location: path)
    }
    return params
}

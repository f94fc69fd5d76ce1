import ArtifactKit
import Foundation
import GPT2
import Quantization

/// The frozen base of a QLoRA run as a file (`QuantizedBaseFile`): quantized once from the
/// float32 weights, then read by later runs without the float32 weights ever being loaded.
public enum QuantizedBaseArtifact {
    public static let fileName = "quantized-base.bin"
    /// Checkpoint metadata key of a QLoRA run (either trainer): the type of the quantized base the
    /// adapters were trained over. The checkpoint holds that base's dequantized values, so it
    /// computes what was trained.
    public static let checkpointKey = "quantized_base"

    /// The base weights of a QLoRA run in `folder` and the model over them, quantized as `type`:
    /// read from `folder/quantized-base.bin` when that file holds these base weights (same
    /// layout, identity and type; the float32 weights of its quantized tensors are then never
    /// loaded), otherwise loaded in float32, quantized, and written there for the next run. The
    /// returned `BaseWeights` has no parameters (the model holds them); `note` says which it was.
    /// `writes` false (the processes of a data-parallel run other than process 0): quantized in
    /// memory, the file is left to process 0.
    public static func model(_ choice: BaseModelChoice, seed: UInt64, layout: ParameterLayout, initScheme: InitScheme,
                             type: QuantizationType, folder: URL,
                             writes: Bool = true) throws -> (base: BaseWeights, model: GPT2Model, note: String) {
        let url = folder.appendingPathComponent(fileName)
        let described = try BaseWeights.describe(choice, seed: seed, layout: layout, initScheme: initScheme)
        if matches(url, layout: layout, baseIdentity: described.identity, type: type) {
            return (described, try loadModel(url, layout: layout, baseIdentity: described.identity, type: type),
                    "quantized base (\(type.rawValue)) read from \(url.path)")
        }
        let model = try BaseWeights.model(of: described, seed: seed, layout: layout, initScheme: initScheme)
        guard writes else {
            // Another process of a data-parallel run writes the file; this one quantizes the same bytes.
            _ = try model.quantizeBase(type) { _, _, _ in }
            return (described, model, "quantized the base's Linear weights to \(type.rawValue) (not written by this process)")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try write(model: model, baseIdentity: described.identity, type: type, to: url)
        let bytes = model.quantizedBaseWeights?.byteCount ?? 0
        return (described, model,
                "quantized the base's Linear weights to \(type.rawValue) (the token embedding to int8): \(TextFormat.bytes(bytes)); wrote \(url.path)")
    }

    /// Quantizes `model`'s float32 base (`GPT2Model.quantizeBase`), writes it to `url` with each
    /// tensor's error, and leaves the model running on the quantized weights.
    public static func write(model: GPT2Model, baseIdentity: String, type: QuantizationType, to url: URL) throws {
        var errors: [String: QuantizationErrorStats] = [:]
        let quantized = try model.quantizeBase(type) { name, matrix, original in
            errors[name] = QuantizationErrorStats(matrix, original: original)
        }
        let entries: [QuantizedBaseFile.Entry] = model.layout.tensors.map { t in
            guard let q = quantized[t.name] else { return .init(name: t.name, shape: t.shape, payload: .float32(model.tensor(t.name)!)) }
            return .init(name: t.name, shape: [q.rows, q.cols], payload: .quantized(q.matrix), error: errors[t.name])
        }
        try QuantizedBaseFile.write(config: configJSON(model.layout), base: baseIdentity, type: type, entries: entries, to: url)
    }

    /// Whether the file at `url` is the base of this layout, base weights and type.
    public static func matches(_ url: URL, layout: ParameterLayout, baseIdentity: String, type: QuantizationType) -> Bool {
        guard let meta = try? QuantizedBaseFile.readMeta(url).meta else { return false }
        return meta.config == configJSON(layout) && meta.base == baseIdentity && meta.type == type.rawValue
    }

    /// A model over the quantized base in `url`, which must have been made from the same layout,
    /// base weights and type; the float32 weights of the quantized tensors are never in memory.
    public static func loadModel(_ url: URL, layout: ParameterLayout, baseIdentity: String, type: QuantizationType) throws -> GPT2Model {
        let (meta, payloads) = try QuantizedBaseFile.read(url)
        let want = "\(layout.config.name), base \(baseIdentity), \(type.rawValue)"
        guard meta.config == configJSON(layout), meta.base == baseIdentity, meta.type == type.rawValue else {
            throw PipelineError("the quantized base was made for another model or base (it holds \(meta.type) of base \(meta.base); this run needs \(want))",
                                location: url.path, hint: "delete it and rerun `train ... --quantize-base \(type.rawValue)` to rewrite it")
        }
        var linears: [String: QuantizedLinear] = [:], remainder: [String: [Float]] = [:]
        for (name, payload) in payloads {
            switch payload {
            case .float32(let v): remainder[name] = v
            case .quantized(let m): linears[name] = QuantizedLinear(m)
            }
        }
        return try GPT2Model(layout: layout, quantized: QuantizedTensors(type: type, linears: linears), remainder: remainder)
    }

    /// The layout's config and head as one JSON string (what the file is checked against).
    static func configJSON(_ layout: ParameterLayout) -> String {
        "{\"config\":\(encodeJSON(layout.config)),\"head\":\(encodeJSON(layout.head))}"
    }
}

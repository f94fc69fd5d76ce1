import ArtifactKit
import Foundation
import GPT2
import Quantization

/// The frozen base of a QLoRA run as a file (`QuantizedBaseFile`): quantized once from the
/// float32 weights, then read by later runs without the float32 weights ever being loaded.
public enum QuantizedBaseArtifact {
    public static let fileName = "quantized-base.bin"

    /// Quantizes `model`'s float32 base (`GPT2Model.quantizeBase`), writes it to `url` with each
    /// tensor's error, and leaves the model running on the quantized weights.
    public static func write(model: GPT2Model, baseIdentity: String, type: QuantizationType, to url: URL) throws {
        let original = model.parameters
        let quantized = try model.quantizeBase(type)
        var entries: [QuantizedBaseFile.Entry] = []
        for t in model.layout.tensors {
            let values = Array(original[t.offset..<t.offset + t.count])
            guard let q = quantized[t.name] else {
                entries.append(.init(name: t.name, shape: t.shape, payload: .float32(values)))
                continue
            }
            let matrix = q.matrix
            let linearOrder = t.name == quantizedEmbeddingName ? values : transposed(values, rows: t.shape[0], cols: t.shape[1])
            let error = linearOrder.withUnsafeBufferPointer { QuantizationErrorStats(matrix, original: $0) }
            entries.append(.init(name: t.name, shape: [matrix.rows, matrix.cols], payload: .quantized(matrix), error: error))
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

    static func transposed(_ v: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
        return out
    }
}

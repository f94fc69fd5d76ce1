import ArtifactKit
import Foundation

/// `pipeline show quantized-base.bin`: the header (model, base, type), the size against the
/// float32 tensors it replaces, and per tensor its storage, shape, bytes and quantization error.
public struct QuantizedBaseInspector: ArtifactInspector {
    public init() {}

    public func canInspect(url: URL, magic: String?) -> Bool { magic == QuantizedBaseFile.header.magic }

    public func inspect(url: URL, rows: Int) throws -> String {
        let (meta, _, size) = try QuantizedBaseFile.readMeta(url)
        let quantized = meta.tensors.filter { $0.storage != "float32" }
        let floatBytes = meta.tensors.reduce(0) { $0 + 4 * $1.shape.reduce(1, *) }
        var out = "quantized base (\(QuantizedBaseFile.header.magic) v\(QuantizedBaseFile.header.version)), \(TextFormat.bytes(size))\n"
        out += "model: \(meta.config)\nbase weights: \(meta.base)\n"
        out += "block projections: \(meta.type); \(quantized.count) of \(meta.tensors.count) tensors quantized; "
        out += "\(TextFormat.bytes(size)) instead of \(TextFormat.bytes(floatBytes)) in float32 "
        out += String(format: "(%.1f%%)\n", 100 * Double(size) / Double(max(1, floatBytes)))
        if let worst = quantized.max(by: { ($0.relativeRMSError ?? 0) < ($1.relativeRMSError ?? 0) }) {
            let mean = quantized.compactMap(\.relativeRMSError).reduce(0, +) / Double(max(1, quantized.count))
            out += String(format: "relative RMS error: mean %.4f, largest %.4f (%@)\n", mean, worst.relativeRMSError ?? 0, worst.name)
        }
        let shown = meta.tensors.prefix(rows)
        out += TextFormat.table(["tensor", "storage", "shape", "bytes", "rms error", "max |error|", "relative rms"], shown.map { t in
            [t.name, t.storage, t.shape.map(String.init).joined(separator: "x"), TextFormat.bytes(t.bytes),
             t.rmsError.map { String(format: "%.3g", $0) } ?? "-", t.maxAbsError.map { String(format: "%.3g", $0) } ?? "-",
             t.relativeRMSError.map { String(format: "%.4f", $0) } ?? "-"]
        }, maxWidth: 40)
        if meta.tensors.count > shown.count { out += "\n... \(meta.tensors.count - shown.count) more tensors (-n N)" }
        return out
    }
}

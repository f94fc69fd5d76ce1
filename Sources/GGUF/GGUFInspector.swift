import ArtifactKit
import Foundation

/// `pipeline show FILE.gguf`: the header, every metadata pair (long arrays shortened to their
/// first `rows` elements) and the tensor table with ggml dims, type and size.
public struct GGUFInspector: ArtifactInspector {
    public init() {}

    /// By extension, or by the 4-byte magic "GGUF" (its 8-byte prefix is not printable, so the
    /// registry's `magic` is nil for it).
    public func canInspect(url: URL, magic: String?) -> Bool {
        if url.pathExtension.lowercased() == "gguf" { return true }
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    public func inspect(url: URL, rows: Int) throws -> String {
        let file = try GGUFFile(contentsOf: url)
        let bytes = TextFormat.fileSize(url)
        var lines = ["file:       \(url.path)",
                     "format:     GGUF v\(file.version), \(file.metadata.count) metadata pairs, \(file.tensors.count) tensors, alignment \(file.alignment)",
                     "size:       \(TextFormat.bytes(bytes)) (data section at byte \(file.dataOffset))",
                     "parameters: \(file.tensors.reduce(0) { $0 + $1.elementCount })",
                     "metadata:"]
        let width = file.metadata.map(\.key.count).max() ?? 0
        for (key, value) in file.metadata {
            lines.append("  " + key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + Self.describe(value, rows: rows))
        }
        lines.append("tensors:")
        let table = file.tensors.map { t in
            [t.name, t.type.description, "[" + t.dims.map(String.init).joined(separator: ", ") + "]", TextFormat.bytes(t.byteCount)]
        }
        lines.append(TextFormat.table(["name", "type", "dims (ggml order)", "size"], table).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        return lines.joined(separator: "\n")
    }

    /// A value for one line: strings quoted, arrays as "[type x count] first, second, ...".
    static func describe(_ value: GGUFValue, rows: Int) -> String {
        switch value {
        case .string(let s):
            let flat = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"" + (flat.count > 80 ? String(flat.prefix(77)) + "..." : flat) + "\""
        case .float32(let x): return "\(x)"
        case .float64(let x): return "\(x)"
        case .bool(let b): return "\(b)"
        case .array(let type, let items):
            let shown = items.prefix(max(rows, 0)).map { describe($0, rows: rows) }.joined(separator: ", ")
            return "[\(type) x \(items.count)] " + shown + (items.count > rows ? ", ..." : "")
        default:
            return value.integer.map(String.init) ?? "?"
        }
    }
}

import Foundation

/// JSON text written by hand where the exact bytes matter (files that must equal what Python's
/// `json.dumps` writes, safetensors headers).
public enum JSONText {
    /// A JSON string literal with Python's escapes: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`,
    /// other control characters as `\u00XX`. With `asciiOnly` (Python's default
    /// `ensure_ascii=True`), everything outside printable ASCII is escaped too, as UTF-16 units;
    /// otherwise non-ASCII stays UTF-8 (`ensure_ascii=False`).
    public static func string(_ s: String, asciiOnly: Bool = false) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension JSONEncoder {
    /// Sorted keys, no escaped slashes: stable bytes for binary artifacts' JSON headers, which
    /// are hashed or compared.
    public static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}

import Foundation

/// Writes `Label,Text` CSV files byte for byte as `DataFrame.to_csv(path, index=None)` does:
/// a header line, `\n` line ends, and minimal quoting (a field is quoted when it contains a
/// comma, a double quote, `\n` or `\r`; quotes inside are doubled).
///
/// A bare `\r` is quoted as CPython's csv module does since 3.11.9 / 3.12.3 (gh-67044); older
/// interpreters wrote it bare, which pandas then read back as a line break.
public enum PandasCSV {
    public static func quoted(_ field: String) -> String {
        let needsQuotes = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The bytes of `to_csv(index=None)` for integer labels and texts.
    public static func labelTextCSV(labels: [Int], texts: [String]) -> Data {
        precondition(labels.count == texts.count)
        var out = "Label,Text\n"
        for (label, text) in zip(labels, texts) {
            out += String(label)
            out += ","
            out += quoted(text)
            out += "\n"
        }
        return Data(out.utf8)
    }

    public static func labelTextCSV(_ rows: [LabeledText]) -> Data {
        labelTextCSV(labels: rows.map(\.label), texts: rows.map(\.text))
    }
}

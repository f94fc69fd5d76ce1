import ArtifactKit
import Foundation

/// Reads a tab-separated file the way the book does:
/// `pd.read_csv(path, sep="\t", header=None, names=["Label", "Text"])` with pandas' C parser and
/// default options (quote character `"`, doubled quotes, `\n`, `\r\n` and `\r` all end a line,
/// blank lines skipped, a UTF-8 byte-order mark skipped, the default NA strings read as missing).
///
/// The state machine follows pandas' tokenizer (pandas/_libs/src/parser/tokenizer.c) for the
/// options above, including its quirks, because the row order of the book's splits depends on
/// exactly which rows pandas sees: a field that starts with `"` runs to the closing quote across
/// tabs and newlines, and characters after the closing quote are appended to the field.
public enum PandasTSV {
    /// One parsed record: its fields in order (raw strings, before NA handling) and the
    /// 1-based physical line on which it starts.
    public struct Record: Equatable {
        public var fields: [String]
        public var line: Int
    }

    /// pandas' default `na_values` (`pandas._libs.parsers.STR_NA_VALUES`): a field equal to one of
    /// these is read as missing (NaN), whether or not it was quoted.
    public static let defaultNAValues: Set<String> = [
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    ]

    private enum State {
        case startRecord, startField, inField, inQuotedField, quoteInQuotedField
        case eatCRNL, eatCRNLNop, whitespaceLine
    }

    /// Splits `bytes` into records. `source` names the file in error messages.
    public static func records(_ bytes: [UInt8], source: String) throws -> [Record] {
        let tab = UInt8(ascii: "\t"), quote = UInt8(ascii: "\""), lf = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r"), space = UInt8(ascii: " ")

        // Line numbers for messages: offsets where a physical line starts (after \n, \r\n or a bare \r).
        var lineStarts = [0]
        for (i, b) in bytes.enumerated() {
            if b == lf || (b == cr && (i + 1 >= bytes.count || bytes[i + 1] != lf)) { lineStarts.append(i + 1) }
        }
        func lineNumber(at offset: Int) -> Int {
            var lo = 0, hi = lineStarts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
            }
            return lo + 1
        }

        var records: [Record] = []
        var fields: [[UInt8]] = []
        var field: [UInt8] = []
        var recordStart = 0
        var state = State.startRecord

        func decode(_ raw: [UInt8], line: Int) throws -> String {
            if raw.contains(0) {
                throw PipelineError("line \(line) contains a NUL byte; this is not a text file pandas can read", location: source)
            }
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw PipelineError("line \(line) is not valid UTF-8", location: source,
                                    hint: "the file must be UTF-8 text, as pandas reads it by default")
            }
            return s
        }
        func endField() { fields.append(field); field = [] }
        func endLine() throws {
            let line = lineNumber(at: recordStart)
            records.append(Record(fields: try fields.map { try decode($0, line: line) }, line: line))
            fields = []
        }

        var i = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            var reprocess = true
            while reprocess {
                reprocess = false
                switch state {
                case .startRecord:
                    recordStart = i - 1
                    if c == lf { break }                      // blank line: skipped
                    if c == cr { state = .eatCRNLNop; break }
                    if c == space { state = .whitespaceLine; break }
                    state = .startField
                    reprocess = true
                case .whitespaceLine:
                    if c == lf { state = .startRecord }
                    else if c == cr { state = .eatCRNLNop }
                    else if c != space {
                        // Not a blank line after all: parse it again from its first character.
                        i = recordStart
                        state = .startField
                    }
                case .eatCRNLNop:
                    // After a skipped blank line ended by \r: pandas swallows a following \n or tab.
                    state = .startRecord
                    if c != lf && c != tab { reprocess = true }
                case .startField:
                    if c == lf { endField(); try endLine(); state = .startRecord }
                    else if c == cr { endField(); state = .eatCRNL }
                    else if c == quote { state = .inQuotedField }
                    else if c == tab { endField() }
                    else { field.append(c); state = .inField }
                case .inField:
                    if c == lf { endField(); try endLine(); state = .startRecord }
                    else if c == cr { endField(); state = .eatCRNL }
                    else if c == tab { endField(); state = .startField }
                    else { field.append(c) }
                case .inQuotedField:
                    if c == quote { state = .quoteInQuotedField } else { field.append(c) }
                case .quoteInQuotedField:
                    if c == quote { field.append(c); state = .inQuotedField }   // "" is a literal "
                    else if c == tab { endField(); state = .startField }
                    else if c == lf { endField(); try endLine(); state = .startRecord }
                    else if c == cr { endField(); state = .eatCRNL }
                    else { field.append(c); state = .inField }                   // text after the closing quote
                case .eatCRNL:
                    if c == lf { try endLine(); state = .startRecord }
                    else if c == tab {
                        // A bare \r ended the line and the tab starts the next one with an empty field.
                        try endLine()
                        recordStart = i - 1
                        endField()
                        state = .startField
                    } else {
                        try endLine()
                        state = .startRecord
                        reprocess = true
                    }
                }
            }
        }
        switch state {
        case .startRecord, .whitespaceLine, .eatCRNLNop:
            break
        case .inQuotedField:
            throw PipelineError("a quoted field starting on line \(lineNumber(at: recordStart)) is never closed (end of file inside quotes)",
                                location: source, hint: "a field that starts with \" must end with \"; write a literal quote as \"\"")
        case .inField, .startField, .quoteInQuotedField:
            endField()
            try endLine()
        case .eatCRNL:
            try endLine()
        }
        return records
    }
}

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

    /// Splits `bytes` into records. `source` names the file in error messages. `delimiter` is the
    /// one-byte field separator (`read_csv(sep=...)`): a tab by default, `,` for CSV files.
    public static func records(_ bytes: [UInt8], source: String, delimiter: UInt8 = UInt8(ascii: "\t")) throws -> [Record] {
        var parser = Parser(bytes: bytes, source: source, tab: delimiter)
        try parser.run()
        return parser.records
    }

    /// Offsets where a physical line starts (after \n, \r\n or a bare \r), for line numbers in messages.
    private struct LineStarts {
        private var starts = [0]

        init(_ bytes: [UInt8]) {
            let lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
            for (i, b) in bytes.enumerated() {
                if b == lf || (b == cr && (i + 1 >= bytes.count || bytes[i + 1] != lf)) { starts.append(i + 1) }
            }
        }

        /// The 1-based line holding byte `offset`.
        func lineNumber(at offset: Int) -> Int {
            var lo = 0, hi = starts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
            }
            return lo + 1
        }
    }

    /// The tokenizer's state machine over one file's bytes.
    private struct Parser {
        static let quote = UInt8(ascii: "\""), lf = UInt8(ascii: "\n")
        static let cr = UInt8(ascii: "\r"), space = UInt8(ascii: " ")

        let bytes: [UInt8]
        let source: String
        /// The field separator (named for the TSV default).
        let tab: UInt8
        let lines: LineStarts
        var records: [Record] = []
        var fields: [[UInt8]] = []
        var field: [UInt8] = []
        var recordStart = 0
        var state = State.startRecord
        /// The next byte to read.
        var i = 0

        init(bytes: [UInt8], source: String, tab: UInt8) {
            self.bytes = bytes
            self.tab = tab
            self.source = source
            lines = LineStarts(bytes)
        }

        mutating func run() throws {
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
            while i < bytes.count {
                let c = bytes[i]
                i += 1
                while try step(c) {}
            }
            try finish()
        }

        /// Feeds `c` to the current state; true when the new state must read `c` again.
        private mutating func step(_ c: UInt8) throws -> Bool {
            switch state {
            case .startRecord, .whitespaceLine, .eatCRNLNop: return stepBetweenRecords(c)
            case .startField, .inField, .inQuotedField, .quoteInQuotedField: try stepInField(c); return false
            case .eatCRNL: return try stepAfterCR(c)
            }
        }

        /// The states before a record starts: blank lines (empty, spaces only, or ended by \r) are skipped.
        private mutating func stepBetweenRecords(_ c: UInt8) -> Bool {
            let (tab, lf, cr, space) = (self.tab, Self.lf, Self.cr, Self.space)
            switch state {
            case .startRecord:
                recordStart = i - 1
                if c == lf { return false }                      // blank line: skipped
                if c == cr { state = .eatCRNLNop; return false }
                if c == space { state = .whitespaceLine; return false }
                state = .startField
                return true
            case .whitespaceLine:
                if c == lf { state = .startRecord }
                else if c == cr { state = .eatCRNLNop }
                else if c != space {
                    // Not a blank line after all: parse it again from its first character.
                    i = recordStart
                    state = .startField
                }
                return false
            default:   // .eatCRNLNop
                // After a skipped blank line ended by \r: pandas swallows a following \n or tab.
                state = .startRecord
                return c != lf && c != tab
            }
        }

        /// The states inside a record's fields.
        private mutating func stepInField(_ c: UInt8) throws {
            let (tab, quote, lf, cr) = (self.tab, Self.quote, Self.lf, Self.cr)
            switch state {
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
            default:   // .quoteInQuotedField
                if c == quote { field.append(c); state = .inQuotedField }   // "" is a literal "
                else if c == tab { endField(); state = .startField }
                else if c == lf { endField(); try endLine(); state = .startRecord }
                else if c == cr { endField(); state = .eatCRNL }
                else { field.append(c); state = .inField }                   // text after the closing quote
            }
        }

        /// After a \r that ended a record: a \n completes the line ending.
        private mutating func stepAfterCR(_ c: UInt8) throws -> Bool {
            if c == Self.lf { try endLine(); state = .startRecord; return false }
            if c == tab {
                // A bare \r ended the line and the tab starts the next one with an empty field.
                try endLine()
                recordStart = i - 1
                endField()
                state = .startField
                return false
            }
            try endLine()
            state = .startRecord
            return true
        }

        /// The end of the file: completes the last record, or reports a quote never closed.
        private mutating func finish() throws {
            switch state {
            case .startRecord, .whitespaceLine, .eatCRNLNop:
                break
            case .inQuotedField:
                throw PipelineError("a quoted field starting on line \(lines.lineNumber(at: recordStart)) is never closed (end of file inside quotes)",
                                    location: source, hint: "a field that starts with \" must end with \"; write a literal quote as \"\"")
            case .inField, .startField, .quoteInQuotedField:
                endField()
                try endLine()
            case .eatCRNL:
                try endLine()
            }
        }

        private mutating func endField() { fields.append(field); field = [] }

        private mutating func endLine() throws {
            let line = lines.lineNumber(at: recordStart)
            let record = Record(fields: try fields.map { try decode($0, line: line) }, line: line)
            records.append(record)
            fields = []
        }

        private func decode(_ raw: [UInt8], line: Int) throws -> String {
            if raw.contains(0) {
                throw PipelineError("line \(line) contains a NUL byte; this is not a text file pandas can read", location: source)
            }
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw PipelineError("line \(line) is not valid UTF-8", location: source,
                                    hint: "the file must be UTF-8 text, as pandas reads it by default")
            }
            return s
        }
    }
}

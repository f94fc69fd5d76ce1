import ArtifactKit
import Foundation

/// The layout of a labelled-text file `prepare classification` reads.
public enum ClassificationFileFormat: String, Codable, CaseIterable, Sendable {
    case csv, tsv, jsonl

    /// The format a file's extension names: `.csv`; `.tsv` / `.tab` (and no extension, as the SMS
    /// collection's `SMSSpamCollection`); `.jsonl` / `.ndjson`.
    public static func detect(_ url: URL) throws -> ClassificationFileFormat {
        switch url.pathExtension.lowercased() {
        case "csv": return .csv
        case "tsv", "tab", "": return .tsv
        case "jsonl", "ndjson": return .jsonl
        default:
            throw PipelineError("cannot tell the format from the extension \"\(url.pathExtension)\" (expected .csv, .tsv or .jsonl)",
                                location: url.path, hint: "pass --format csv, --format tsv or --format jsonl")
        }
    }

    /// The field separator of the delimited formats.
    var delimiter: UInt8 { self == .csv ? UInt8(ascii: ",") : UInt8(ascii: "\t") }
}

/// A column named by its header (a JSONL key) or by its 0-based position in a headerless file.
/// `--text-column 1` is a position; `--text-column sms` a name.
public enum ColumnRef: Equatable, Hashable, CustomStringConvertible, Sendable {
    case name(String)
    case index(Int)

    public init(parsing text: String) {
        if let i = Int(text), i >= 0, text.allSatisfy(\.isASCII) { self = .index(i) } else { self = .name(text) }
    }

    public var description: String {
        switch self {
        case .name(let n): return n
        case .index(let i): return String(i)
        }
    }

    var isName: Bool { if case .name = self { return true } else { return false } }
}

/// How to read the input file: its format, which columns hold the text and the label, and the
/// class names. Unset fields take the SMS collection's defaults (headerless, label in column 0,
/// text in column 1; JSONL keys `label` and `text`).
public struct ClassificationInputOptions: Equatable, Sendable {
    /// nil: from the file's extension.
    public var format: ClassificationFileFormat?
    public var textColumn: ColumnRef?
    public var labelColumn: ColumnRef?
    /// Class names in id order (a label outside them is an error); nil: the labels found, sorted
    /// numerically when every label is an integer, else lexicographically (SMS: ham 0, spam 1).
    public var labelNames: [String]?
    /// A column whose values (train, validation, test) assign each row its split.
    public var splitColumn: ColumnRef?

    public init(format: ClassificationFileFormat? = nil, textColumn: ColumnRef? = nil, labelColumn: ColumnRef? = nil,
                labelNames: [String]? = nil, splitColumn: ColumnRef? = nil) {
        self.format = format
        self.textColumn = textColumn
        self.labelColumn = labelColumn
        self.labelNames = labelNames
        self.splitColumn = splitColumn
    }

    /// The label and text columns, defaults filled in for `format`.
    func columns(for format: ClassificationFileFormat) -> (label: ColumnRef, text: ColumnRef) {
        format == .jsonl ? (labelColumn ?? .name("label"), textColumn ?? .name("text"))
                         : (labelColumn ?? .index(0), textColumn ?? .index(1))
    }

    /// How labels are numbered, for the manifest.
    public var labelOrder: String {
        labelNames == nil ? "sorted: numerically when every label is an integer, else lexicographically (by Unicode scalars)"
                          : "as given by --labels"
    }
}

/// A labelled-text file read: its rows and the class names by id.
public struct LabeledTable: Equatable {
    public var rows: [LabeledText]
    public var labelNames: [String]
    public var format: ClassificationFileFormat
}

/// One record before labels are numbered: nil for a missing field.
struct RawLabeledText {
    var label: String?
    var text: String?
    var line: Int
    /// The split column's value (or the split of the file it came from).
    var split: String?
}

/// The three splits, as named in a `--split-column` (`val`, `valid` and `dev` also mean validation).
public enum ClassificationSplit: String, CaseIterable, Sendable {
    case train, validation, test

    static func index(_ value: String?, place: String) throws -> Int? {
        guard let value else { return nil }
        switch value.lowercased() {
        case "train": return 0
        case "validation", "val", "valid", "dev": return 1
        case "test": return 2
        default:
            throw PipelineError("unknown split \"\(value)\" in the split column; expected train, validation (val, valid, dev) or test",
                                location: place, hint: "fix this line, or leave --split-column out to split by fractions")
        }
    }
}

/// CSV and TSV files, read as pandas' `read_csv(sep=...)` reads them (`PandasTSV`): quoted fields
/// may hold the separator and newlines, `""` is a quote, a UTF-8 BOM is skipped, CRLF ends a line.
/// Columns given by name make the first record the header; by position, the file is headerless.
enum LabeledDelimited {
    static func rows(_ data: Data, source: String, format: ClassificationFileFormat,
                     options: ClassificationInputOptions) throws -> [RawLabeledText] {
        let records = try PandasTSV.records([UInt8](data), source: source, delimiter: format.delimiter)
        guard !records.isEmpty else { return [] }   // reported as an empty data set
        let (labelRef, textRef) = options.columns(for: format)
        var body = records[...]
        let header = labelRef.isName || textRef.isName || options.splitColumn?.isName == true ? body.popFirst()?.fields : nil
        // pandas: as many fields as the header (or the first line; at least the SMS default's 2) has;
        // more is an error, fewer are missing.
        let defaults = options.labelColumn == nil && options.textColumn == nil ? 2 : 0
        let width = header?.count ?? max(body.first?.fields.count ?? 0, defaults)
        let label = try index(of: labelRef, header: header, width: width, flag: "--label-column", source: source)
        let text = try index(of: textRef, header: header, width: width, flag: "--text-column", source: source)
        let split = try options.splitColumn.map { try index(of: $0, header: header, width: width, flag: "--split-column", source: source) }
        let sep = format == .csv ? "comma" : "tab"
        return try body.map { r in
            guard r.fields.count <= width else {
                let names = header.map { " (" + $0.joined(separator: ", ") + ")" } ?? (width == 2 ? " (Label, Text)" : "")
                throw PipelineError("expected \(width) \(sep)-separated fields\(names), found \(r.fields.count)", location: "\(source):\(r.line)",
                                    hint: "a text that contains a \(sep) must be quoted with \"...\"")
            }
            func field(_ i: Int?) -> String? { i.flatMap { $0 < r.fields.count ? r.fields[$0] : nil } }
            return RawLabeledText(label: field(label), text: field(text), line: r.line, split: field(split))
        }
    }

    /// The position of `ref`: a header name, or a 0-based index below the file's width.
    static func index(of ref: ColumnRef, header: [String]?, width: Int, flag: String, source: String) throws -> Int {
        switch ref {
        case .name(let name):
            guard let header else { throw PipelineError("the file is empty: no header row", location: source) }
            guard let i = header.firstIndex(of: name) else {
                throw PipelineError("no column \"\(name)\" in the header; the columns are: \(header.map { "\"\($0)\"" }.joined(separator: ", "))",
                                    location: "\(source):1", hint: "pass \(flag) with one of these names (or a 0-based index for a headerless file)")
            }
            return i
        case .index(let i):
            guard i < width else {
                throw PipelineError("\(flag) \(i) is past the last column: the records have \(width) fields (0...\(width - 1))",
                                    location: source, hint: "pass \(flag) with a 0-based index below \(width), or a header name")
            }
            return i
        }
    }
}

/// JSON Lines: one object per line; the label (a string or an integer) and the text (a string)
/// under the keys `--label-column` / `--text-column` name. Blank lines are skipped.
enum LabeledJSONL {
    static func rows(_ data: Data, source: String, options: ClassificationInputOptions) throws -> [RawLabeledText] {
        let splitKey: String? = try options.splitColumn.map {
            guard case .name(let key) = $0 else { throw PipelineError("JSONL records are objects: name --split-column by key", location: source) }
            return key
        }
        guard case (.name(let labelKey), .name(let textKey)) = options.columns(for: .jsonl) else {
            throw PipelineError("JSONL records are objects: name the label and text by key, not by position",
                                location: source, hint: "pass --label-column KEY --text-column KEY")
        }
        var bytes = [UInt8](data)[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        var out: [RawLabeledText] = []
        for (n, lineBytes) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let place = "\(source):\(n + 1)"
            guard let line = String(validating: lineBytes, as: UTF8.self) else {
                throw PipelineError("line \(n + 1) is not valid UTF-8", location: place, hint: "the file must be UTF-8 text")
            }
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw PipelineError("not a JSON object", location: place, hint: "every line of a .jsonl file must be one {...} object")
            }
            out.append(RawLabeledText(label: try value(object, labelKey, label: true, place: place, flag: "--label-column"),
                                      text: try value(object, textKey, label: false, place: place, flag: "--text-column"), line: n + 1,
                                      split: try splitKey.flatMap { try value(object, $0, label: false, place: place, flag: "--split-column") }))
        }
        return out
    }

    /// The string at `key` (an integer label as its decimal digits); a missing key lists the keys found.
    static func value(_ object: [String: Any], _ key: String, label: Bool, place: String, flag: String) throws -> String? {
        guard let v = object[key] else {
            throw PipelineError("no key \"\(key)\"; this record has \(object.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", "))",
                                location: place, hint: "pass \(flag) with the key that holds the \(label ? "label" : "text")")
        }
        if v is NSNull { return nil }
        if let s = v as? String { return s }
        if label, let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) { return String(i) }
        throw PipelineError("the \(label ? "label" : "text") under \"\(key)\" is \(v), not a \(label ? "string or integer" : "string")",
                            location: place, hint: "fix this line")
    }
}

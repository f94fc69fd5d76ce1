import ArtifactKit
import Foundation

/// One labelled text (of the SMS collection, or of your file).
public struct LabeledText: Equatable {
    /// Class index (SMS: ham 0, spam 1).
    public var label: Int
    public var text: String
    /// Position in the parsed file (0-based, pandas' default index), kept to prove row order.
    public var row: Int
    /// 1-based line where the record starts, for messages.
    public var line: Int
    /// The split the input assigned (0 train, 1 validation, 2 test: `--train/--validation/--test`
    /// files or `--split-column`); nil when `prepare` splits by fractions.
    public var split: Int?

    public init(label: Int, text: String, row: Int, line: Int, split: Int? = nil) {
        self.label = label
        self.text = text
        self.row = row
        self.line = line
        self.split = split
    }
}

/// The class names of the book's spam classifier and their indices
/// (`balanced_df["Label"].map({"ham": 0, "spam": 1})`).
public enum SpamLabels {
    public static let names = ["ham", "spam"]
    public static let ham = 0
    public static let spam = 1
}

/// Loads a labelled-text file (CSV, TSV or JSONL; by default the SMS Spam Collection TSV,
/// `Label<TAB>Text` per record, read as pandas would) into labelled texts with class ids,
/// rejecting what training could not use. Errors name the file and line.
public enum LabeledTextTable {
    static let fetchHint = "run `pipeline run fetch` first, or pass the right --input"

    /// The SMS reading: a headerless TSV whose labels must be `labels` (ids in that order).
    public static func parse(_ data: Data, source: String, labels: [String] = SpamLabels.names) throws -> [LabeledText] {
        try read(data, source: source, options: ClassificationInputOptions(format: .tsv, labelNames: labels)).rows
    }

    public static func load(from url: URL, labels: [String] = SpamLabels.names) throws -> [LabeledText] {
        try load(from: url, options: ClassificationInputOptions(format: .tsv, labelNames: labels)).rows
    }

    public static func load(from url: URL, options: ClassificationInputOptions) throws -> LabeledTable {
        let data = try Data.reading(url, what: "the input file", missingHint: fetchHint)
        return try read(data, source: url.path, options: options)
    }

    /// Reads `data` in `options.format` (else the format `source`'s extension names) and numbers its labels.
    public static func read(_ data: Data, source: String, options: ClassificationInputOptions) throws -> LabeledTable {
        try number([try readRaw(data, source: source, options: options)], options: options)
    }

    /// `--train`, `--validation`, `--test` files: read alike, rows tagged with their split, labels
    /// numbered over all of them.
    public static func load(splitFiles urls: [URL], options: ClassificationInputOptions) throws -> LabeledTable {
        let files = try urls.enumerated().map { i, url -> RawFile in
            let data = try Data.reading(url, what: "the input file", missingHint: "pass the right --train / --validation / --test")
            var file = try readRaw(data, source: url.path, options: options)
            for k in file.rows.indices { file.rows[k].split = ClassificationSplit.allCases[i].rawValue }
            return file
        }
        return try number(files, options: options)
    }

    /// One file's records before their labels are numbered.
    struct RawFile {
        var source: String
        var format: ClassificationFileFormat
        var rows: [RawLabeledText]
    }

    static func readRaw(_ data: Data, source: String, options: ClassificationInputOptions) throws -> RawFile {
        let format = try options.format ?? ClassificationFileFormat.detect(URL(fileURLWithPath: source))
        let raw = format == .jsonl ? try LabeledJSONL.rows(data, source: source, options: options)
                                   : try LabeledDelimited.rows(data, source: source, format: format, options: options)
        guard !raw.isEmpty else {
            throw PipelineError("the data set is empty: no records found", location: source,
                                hint: "check the file (for the SMS collection: `pipeline run fetch`)")
        }
        return RawFile(source: source, format: format, rows: raw)
    }

    /// Numbers the labels of `files` (one id order for all) and checks every record.
    static func number(_ files: [RawFile], options: ClassificationInputOptions) throws -> LabeledTable {
        let names = try options.labelNames ?? labelNames(files.flatMap(\.rows), source: files.map(\.source).joined(separator: ", "))
        let rows = try files.flatMap { file in
            try file.rows.enumerated().map { row, r in
                try labeledText(r, row: row, names: names, naStrings: file.format != .jsonl, source: file.source)
            }
        }
        return LabeledTable(rows: rows, labelNames: names, format: files[0].format)
    }

    /// The labels found, in id order: numerically sorted when all are integers, else lexicographically.
    static func labelNames(_ raw: [RawLabeledText], source: String) throws -> [String] {
        let found = Set(raw.compactMap(\.label).filter { !PandasTSV.defaultNAValues.contains($0) })
        let numeric = found.allSatisfy { Int($0) != nil }
        let names = numeric ? found.sorted { Int($0)! < Int($1)! } : found.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        guard names.count >= 2 else {
            throw PipelineError("every row has the label \(names.first.map { "\"\($0)\"" } ?? "(none)"): a classifier needs at least 2 classes",
                                location: source, hint: "check --label-column names the label column, or add rows of the other classes")
        }
        return names
    }

    /// One record checked: a known label and a non-empty text (pandas' NA strings count as empty in CSV/TSV).
    static func labeledText(_ r: RawLabeledText, row: Int, names: [String], naStrings: Bool, source: String) throws -> LabeledText {
        let place = "\(source):\(r.line)"
        let rawLabel = r.label ?? ""
        guard let label = names.firstIndex(of: rawLabel) else {
            let missing = rawLabel.isEmpty || (naStrings && PandasTSV.defaultNAValues.contains(rawLabel))
            let known = names.map { "\"\($0)\"" }.joined(separator: " or ")
            throw PipelineError("\(missing ? "a missing label" : "unknown label \"\(rawLabel)\""); expected \(known)", location: place,
                                hint: "fix or remove this line (or name the classes with --labels)")
        }
        let text = r.text ?? ""
        if text.isEmpty || (naStrings && PandasTSV.defaultNAValues.contains(text)) {
            let why = text.isEmpty ? "the record has no text" :
                "the text \"\(text)\" is one of pandas' NA strings, so read_csv (and this reader) sees no text"
            throw PipelineError("\(why) (rows with empty text are refused, not skipped)", location: place,
                                hint: "every record needs a label and a text; remove or fix this line")
        }
        return LabeledText(label: label, text: text, row: row, line: r.line, split: try ClassificationSplit.index(r.split, place: place))
    }
}

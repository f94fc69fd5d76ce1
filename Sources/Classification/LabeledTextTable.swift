import ArtifactKit
import Foundation

/// One labelled text of the SMS collection.
public struct LabeledText: Equatable {
    /// Class index (ham 0, spam 1).
    public var label: Int
    public var text: String
    /// Position in the parsed file (0-based, pandas' default index), kept to prove row order.
    public var row: Int
    /// 1-based line where the record starts, for messages.
    public var line: Int

    public init(label: Int, text: String, row: Int, line: Int) {
        self.label = label
        self.text = text
        self.row = row
        self.line = line
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
        let format = try options.format ?? ClassificationFileFormat.detect(URL(fileURLWithPath: source))
        let raw = format == .jsonl ? try LabeledJSONL.rows(data, source: source, options: options)
                                   : try LabeledDelimited.rows(data, source: source, format: format, options: options)
        guard !raw.isEmpty else {
            throw PipelineError("the data set is empty: no records found", location: source,
                                hint: "check the file (for the SMS collection: `pipeline run fetch`)")
        }
        let names = try options.labelNames ?? labelNames(raw, source: source)
        let rows = try raw.enumerated().map { row, r in
            try labeledText(r, row: row, names: names, naStrings: format != .jsonl, source: source)
        }
        return LabeledTable(rows: rows, labelNames: names, format: format)
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
        return LabeledText(label: label, text: text, row: row, line: r.line)
    }
}

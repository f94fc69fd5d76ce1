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

/// Loads the SMS Spam Collection TSV (`Label<TAB>Text` per record) into labelled texts,
/// rejecting what the book's pipeline could not use.
public enum LabeledTextTable {
    /// Parses `data` as pandas would (see `PandasTSV`) and maps labels to class indices.
    ///
    /// Errors name the file and line: an unknown or missing label, a record with no text (which
    /// pandas reads as NaN, including the default NA strings such as "NA"), more than two fields,
    /// and a file without any record.
    public static func parse(_ data: Data, source: String, labels: [String] = SpamLabels.names) throws -> [LabeledText] {
        let records = try PandasTSV.records([UInt8](data), source: source)
        guard !records.isEmpty else {
            throw PipelineError("the data set is empty: no `label<TAB>text` records found", location: source,
                                hint: "check that the file is the SMS Spam Collection (rerun `pipeline run fetch`)")
        }
        var out: [LabeledText] = []
        out.reserveCapacity(records.count)
        let known = labels.map { "\"\($0)\"" }.joined(separator: " or ")
        for (row, record) in records.enumerated() {
            let where_ = "\(source):\(record.line)"
            guard record.fields.count <= 2 else {
                throw PipelineError("expected 2 tab-separated fields (Label, Text), found \(record.fields.count)",
                                    location: where_, hint: "a text that contains a tab must be quoted with \"...\"")
            }
            let rawLabel = record.fields.first ?? ""
            guard let label = labels.firstIndex(of: rawLabel) else {
                let shown = PandasTSV.defaultNAValues.contains(rawLabel) ? "a missing label" : "unknown label \"\(rawLabel)\""
                throw PipelineError("\(shown); expected \(known)", location: where_)
            }
            let text = record.fields.count == 2 ? record.fields[1] : ""
            guard !PandasTSV.defaultNAValues.contains(text) else {
                let why = text.isEmpty ? "the record has no text" :
                    "the text \"\(text)\" is one of pandas' NA strings, so the book's read_csv sees no text"
                throw PipelineError("\(why)", location: where_,
                                    hint: "every record needs `label<TAB>text`; remove or fix this line")
            }
            out.append(LabeledText(label: label, text: text, row: row, line: record.line))
        }
        return out
    }

    public static func load(from url: URL, labels: [String] = SpamLabels.names) throws -> [LabeledText] {
        let data = try Data.reading(url, what: "the input file", missingHint: "run `pipeline run fetch` first, or pass the right --input")
        return try parse(data, source: url.path, labels: labels)
    }
}

import ArtifactKit
import Foundation

/// Full-split evaluation of a trained classifier (the book's end-of-chapter accuracies, computed
/// over every row) and the files `evaluate` writes from it.
public enum ClassifierEvaluation {
    /// Logits of every row of `split`, in file order.
    public static func logits(model: ClassifierModel, split: DataSplit) throws -> [[Float]] {
        try model.logits(rows: Array(0..<split.rows.rowCount), of: split)
    }

    public static func metrics(logits: [[Float]], labels: [Int], batchSize: Int, head: ClassifierHead) -> SplitMetrics {
        SplitMetrics(labels: labels, predicted: logits.map(argmax), numClasses: head.numClasses,
                     loss: bookLoss(logits: logits, labels: labels, batchSize: batchSize, head: head))
    }

    /// `predictions.csv`: text, label, predicted, spam_probability (softmax of the positive class).
    public static func predictionsCSV(texts: [String], labels: [Int], logits: [[Float]], positiveClass: Int = 1) -> Data {
        var out = "text,label,predicted,spam_probability\n"
        for (i, text) in texts.enumerated() {
            let p = softmax(logits[i])[positiveClass]
            out += CSV.quoted(text) + ",\(labels[i]),\(argmax(logits[i])),\(String(format: "%.6f", p))\n"
        }
        return Data(out.utf8)
    }
}

/// Minimal RFC 4180 CSV: fields quoted with double quotes when needed, "" inside quotes.
public enum CSV {
    public static func quoted(_ field: String) -> String {
        if field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return field
    }

    /// Parses CSV text into rows of fields; reports an unterminated quote with its line.
    public static func parse(_ text: String, source: String) throws -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var inQuotes = false, quoteLine = 0, line = 1
        var chars = Array(text.unicodeScalars)[...]
        var afterField = false
        while let c = chars.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { chars.removeFirst(); field.unicodeScalars.append("\"") } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"": inQuotes = true; quoteLine = line
            case ",": row.append(field); field = ""
            case "\r": continue
            case "\n":
                row.append(field); rows.append(row); row = []; field = ""; line += 1
            default: field.unicodeScalars.append(c)
            }
            afterField = true
        }
        if inQuotes { throw PipelineError("a quoted field opened on line \(quoteLine) is never closed", location: source) }
        if afterField && (!field.isEmpty || !row.isEmpty) { row.append(field); rows.append(row) }
        return rows
    }

    /// The texts of a `Label,Text` file written by `prepare classification`, checked against the shard's row count.
    public static func texts(of url: URL, expectedRows: Int) throws -> [String] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw PipelineError("cannot read the texts", location: url.path, hint: "rerun `prepare classification`")
        }
        let rows = try parse(text, source: url.path)
        guard let header = rows.first, let col = header.firstIndex(of: "Text") else {
            throw PipelineError("no `Text` column in the header", location: url.path, hint: "rerun `prepare classification`")
        }
        let body = rows.dropFirst()
        guard body.count == expectedRows else {
            throw PipelineError("\(body.count) rows, but the matching shard has \(expectedRows)", location: url.path,
                                hint: "rerun `prepare classification` so the CSV and the shard agree")
        }
        return try body.enumerated().map { i, r in
            guard col < r.count else { throw PipelineError("row \(i + 1) has no Text field", location: url.path) }
            return r[col]
        }
    }
}

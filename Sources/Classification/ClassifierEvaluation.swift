import ArtifactKit
import Foundation

/// Full-split evaluation of a trained classifier (the book's end-of-chapter accuracies, computed
/// over every row) and the files `evaluate` writes from it.
public enum ClassifierEvaluation {
    /// Logits of every row of `split`, in file order.
    public static func logits(model: ClassifierModel, split: DataSplit) throws -> [[Float]] {
        try model.logits(rows: Array(0..<split.rows.rowCount), of: split)
    }

    public static func metrics(logits: [[Float]], labels: [Int], batchSize: Int, head: ClassifierHead,
                               classNames: [String]? = nil) -> SplitMetrics {
        SplitMetrics(labels: labels, predicted: logits.map(argmax), numClasses: head.numClasses,
                     loss: bookLoss(logits: logits, labels: labels, batchSize: batchSize, head: head), classNames: classNames)
    }

    /// `predictions.csv`: text, label and predicted ids, their names, and the softmax probability
    /// of each class (`<name>_probability`, e.g. ham_probability, spam_probability).
    public static func predictionsCSV(texts: [String], labels: [Int], logits: [[Float]], classNames: [String]) -> Data {
        var out = (["text", "label", "predicted", "label_name", "predicted_name"] + classNames.map { "\($0)_probability" })
            .map(CSV.quoted).joined(separator: ",") + "\n"
        for (i, text) in texts.enumerated() {
            let predicted = argmax(logits[i])
            let fields = [CSV.quoted(text), String(labels[i]), String(predicted), CSV.quoted(classNames[labels[i]]),
                          CSV.quoted(classNames[predicted])] + softmax(logits[i]).map { String(format: "%.6f", $0) }
            out += fields.joined(separator: ",") + "\n"
        }
        return Data(out.utf8)
    }
}

extension SplitMetrics {
    /// The console summary: one line per split, then this split's per-class table and confusion matrix.
    public static func report(_ metrics: [String: SplitMetrics], detailed: String = "test") -> String {
        var lines: [String] = []
        for name in ClassificationPreparer.splitNames {
            guard let m = metrics[name] else { continue }
            lines.append(name.padding(toLength: 11, withPad: " ", startingAt: 0)
                + String(format: "accuracy %6.2f%%  loss %.3f  macro F1 %.3f  weighted F1 %.3f  (%d rows)",
                         m.accuracy * 100, m.loss, m.macro.f1, m.weighted.f1, m.rows))
        }
        guard let m = metrics[detailed] else { return lines.joined(separator: "\n") }
        lines.append("\n\(detailed) split, per class:")
        let f = { String(format: "%.3f", $0) }
        var rows = m.classes.map { [$0.name, f($0.precision), f($0.recall), f($0.f1), String($0.support)] }
        rows.append(["macro avg", f(m.macro.precision), f(m.macro.recall), f(m.macro.f1), String(m.rows)])
        rows.append(["weighted avg", f(m.weighted.precision), f(m.weighted.recall), f(m.weighted.f1), String(m.rows)])
        lines.append(TextFormat.table(["class", "precision", "recall", "F1", "support"], rows))
        lines.append("confusion matrix (rows: actual, columns: predicted):")
        let names = m.classes.map(\.name)
        lines.append(TextFormat.table([""] + names, zip(names, m.confusion).map { [$0] + $1.map(String.init) }))
        return lines.joined(separator: "\n")
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

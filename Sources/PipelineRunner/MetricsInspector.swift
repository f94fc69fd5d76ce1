import ArtifactKit
import Foundation

/// `metrics.json` written by `evaluate`: a table when it maps split names to metric objects
/// (chapter 6), otherwise its scalar values as flattened `key.subkey  value` lines (chapter 7).
struct MetricsInspector: ArtifactInspector {
    func canInspect(url: URL, magic: String?) -> Bool { url.lastPathComponent == "metrics.json" }

    func inspect(url: URL, rows: Int) throws -> String {
        "file: \(url.path)\n" + (try MetricsTable.render(url))
    }
}

public enum MetricsTable {
    /// Renders a metrics.json file as text (see `MetricsInspector`).
    public static func render(_ url: URL) throws -> String {
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: url)) } catch {
            throw PipelineError("not a readable metrics file: \(error)", location: url.path,
                                hint: "rerun the evaluate stage (`pipeline run evaluate --force`)")
        }
        guard case .object(let top) = value else { return value.description }
        let groups = top.keys.sorted().compactMap { key -> (String, [String: JSONValue])? in
            if case .object(let o) = top[key]! { return (key, o) }
            return nil
        }
        if groups.count == top.count, !groups.isEmpty {
            // Every top-level value is an object: one row per group, one column per scalar metric.
            let columns = Array(Set(groups.flatMap { $0.1.keys.filter { isScalar($0, in: groups) } })).sorted {
                (preferred.firstIndex(of: $0) ?? Int.max, $0) < (preferred.firstIndex(of: $1) ?? Int.max, $1)
            }
            var table = [[""] + columns]
            for (name, metrics) in groups {
                table.append([name] + columns.map { metrics[$0].map(format) ?? "" })
            }
            return ([render(table)] + groups.compactMap(perClass)).joined(separator: "\n\n")
        }
        var lines: [String] = []
        flatten(value, prefix: "", into: &lines)
        return lines.joined(separator: "\n")
    }

    /// A classifier split's per-class scores with their macro and weighted averages, and its
    /// confusion matrix (rows actual, columns predicted), when the group has them.
    static func perClass(_ group: (String, [String: JSONValue])) -> String? {
        guard case .array(let classes)? = group.1["classes"] else { return nil }
        let scores = ["precision", "recall", "f1"]
        var table = [["\(group.0) split", "precision", "recall", "f1", "support"]]
        var names: [String] = []
        for case .object(let c) in classes {
            names.append(c["name"]?.stringValue ?? "?")
            table.append([names.last!] + scores.map { c[$0].map(formatScore) ?? "" } + [c["support"]?.description ?? ""])
        }
        for average in ["macro", "weighted"] {
            guard case .object(let a)? = group.1[average] else { continue }
            table.append(["\(average) avg"] + scores.map { a[$0].map(formatScore) ?? "" } + [group.1["rows"]?.description ?? ""])
        }
        var text = render(table)
        if case .array(let rows)? = group.1["confusion"], rows.count == names.count {
            var matrix = [["actual \\ predicted"] + names]
            for (name, row) in zip(names, rows) {
                guard case .array(let cells) = row else { continue }
                matrix.append([name] + cells.map(\.description))
            }
            text += "\n" + render(matrix)
        }
        return text
    }

    /// Columns shown first, in the book's order of importance.
    static let preferred = ["rows", "accuracy", "loss", "precision", "recall", "f1"]

    static func isScalar(_ key: String, in groups: [(String, [String: JSONValue])]) -> Bool {
        groups.allSatisfy { group in
            switch group.1[key] {
            case .array?, .object?: return false
            default: return true
            }
        }
    }

    /// A score (JSON writes 1.0 as 1) with the decimals of the others.
    static func formatScore(_ v: JSONValue) -> String {
        if case .int(let i) = v { return format(.double(Double(i))) }
        return format(v)
    }

    static func format(_ v: JSONValue) -> String {
        if case .double(let d) = v { return String(format: abs(d) < 1e-3 && d != 0 ? "%.3e" : "%.4f", d) }
        return v.description
    }

    static func flatten(_ v: JSONValue, prefix: String, into lines: inout [String]) {
        switch v {
        case .object(let o):
            for key in o.keys.sorted() { flatten(o[key]!, prefix: prefix.isEmpty ? key : prefix + "." + key, into: &lines) }
        default:
            lines.append(prefix + "  " + format(v))
        }
    }

    static func render(_ table: [[String]]) -> String {
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
        return table.map { row in
            row.enumerated().map { c, cell in
                c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}


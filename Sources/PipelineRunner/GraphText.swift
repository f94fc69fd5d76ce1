import Foundation

extension Pipeline {
    /// The stage graph as text: stages in run order, each with the stages it reads from and the
    /// paths that connect them, then the graph as an indented tree from the stages with no upstream.
    public func graphText() -> String {
        var lines: [String] = ["stages in run order:"]
        for (i, stage) in stages.enumerated() {
            let reads = edges.filter { $0.to == stage.name }
            let from = reads.isEmpty ? "" : "  <- " + Dictionary(grouping: reads, by: \.from)
                .sorted { $0.key < $1.key }
                .map { from, es in "\(from) (\(es.map(\.dep).joined(separator: ", ")))" }.joined(separator: ", ")
            lines.append("  \(i + 1). \(stage.name)\(from)")
            if let desc = stage.definition.desc { lines.append("       \(desc)") }
        }
        lines.append("")
        lines.append("tree:")
        func children(_ name: String) -> [String] {
            stages.map(\.name).filter { child in edges.contains { $0.from == name && $0.to == child } }
        }
        var printed = Set<String>()
        func walk(_ name: String, _ prefix: String, _ isLast: Bool, _ root: Bool) {
            let branch = root ? "" : (isLast ? "└── " : "├── ")
            let seen = printed.contains(name)
            lines.append("  " + prefix + branch + name + (seen && !children(name).isEmpty ? " (see above)" : ""))
            guard !seen else { return }
            printed.insert(name)
            let kids = children(name)
            let nextPrefix = root ? "" : prefix + (isLast ? "    " : "│   ")
            for (i, kid) in kids.enumerated() { walk(kid, nextPrefix, i == kids.count - 1, false) }
        }
        for stage in stages where stage.upstream.isEmpty { walk(stage.name, "", true, true) }
        return lines.joined(separator: "\n")
    }

    /// The stage graph in Graphviz `dot` syntax (`pipeline dag --dot | dot -Tpng > dag.png`).
    public func graphDot() -> String {
        var lines = ["digraph pipeline {", "  rankdir=LR;", "  node [shape=box];"]
        for stage in stages { lines.append("  \"\(stage.name)\";") }
        var seen = Set<String>()
        for e in edges where seen.insert("\(e.from)->\(e.to)").inserted {
            lines.append("  \"\(e.from)\" -> \"\(e.to)\";")
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }
}

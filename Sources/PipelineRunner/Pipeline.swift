import ArtifactKit
import Foundation

/// A stage with its placeholders resolved, its paths normalized and its place in the graph known.
public struct PlannedStage: Sendable {
    public var definition: StageDefinition
    public var name: String { definition.name }
    /// The exact command passed to `/bin/sh -c`.
    public var command: String
    /// The command as the lock records and compares it: `command` with the placeholders of the
    /// stage's `run_params` kept as written (equal to `command` when it has none).
    public var recordedCommand: String
    /// Normalized paths relative to the pipeline directory.
    public var deps: [String]
    public var outs: [String]
    /// The resolved value of every param key the stage lists (whole subtrees included).
    public var params: [String: JSONValue]
    /// Stages this one reads outputs of, in run order.
    public var upstream: [String]
}

/// An edge of the stage graph: `to` reads `dep`, which is (inside) `out` written by `from`.
public struct StageEdge: Equatable, Sendable {
    public var from: String
    public var to: String
    public var dep: String
    public var out: String
}

/// A validated pipeline: params with overrides applied, and stages in dependency order.
public struct Pipeline: Sendable {
    public var file: PipelineFile
    public var params: [String: JSONValue]
    /// Stages in run order: every stage comes after the stages whose outs it reads; ties keep file order.
    public var stages: [PlannedStage]
    public var edges: [StageEdge]

    public var directory: URL { file.directory }

    public func stage(named name: String) -> PlannedStage? { stages.first { $0.name == name } }

    /// Absolute URL of a path relative to the pipeline directory.
    public func url(for path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : directory.appendingPathComponent(path)
    }

    /// Loads, checks and plans a pipeline file; `overrides` are `--set key=value` strings.
    public static func load(url: URL, overrides: [String] = [], checkDisk: Bool = true) throws -> Pipeline {
        let file = try PipelineFile.load(url: url)
        return try plan(file, overrides: try parseOverrides(overrides), checkDisk: checkDisk)
    }

    /// Parses `key=value` strings; the value is read as a YAML scalar (`7` is an int, `"7"` a string).
    public static func parseOverrides(_ items: [String]) throws -> [(String, JSONValue)] {
        try items.map { item in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw PipelineError("`--set \(item)` must look like `group.key=value`")
            }
            let key = String(item[..<eq]).trimmingCharacters(in: .whitespaces)
            let value = try PipelineFile.parseScalar(String(item[item.index(after: eq)...]))
            return (key, value)
        }
    }

    /// Resolves and cross-checks a parsed file.
    ///
    /// Errors: an override or a listed param that does not exist, a placeholder naming a missing
    /// or non-scalar param, two stages writing the same out (or one inside another's), a dep
    /// that no stage writes and that is not on disk (only when `checkDisk`), and a cycle.
    public static func plan(_ file: PipelineFile, overrides: [(String, JSONValue)] = [], checkDisk: Bool = true) throws -> Pipeline {
        var params = file.params
        for (key, value) in overrides {
            if key.hasPrefix(PipelineFile.builtinGroup + ".") {
                throw PipelineError("`\(key)` is a builtin and cannot be set", location: "--set \(key)")
            }
            try Params.set(key, to: value, in: &params)
        }
        let where_ = { (stage: StageDefinition) -> String in
            stage.line.map { "\(file.url.path):\($0)" } ?? file.url.path
        }

        var planned: [PlannedStage] = []
        for def in file.stages {
            var values: [String: JSONValue] = [:]
            for key in def.params {
                guard let v = Params.value(at: key, in: params) else {
                    throw PipelineError("stage `\(def.name)` lists param `\(key)`, which is not defined under `params:`",
                                        location: where_(def), hint: "known params: \(Params.allLeafKeys(params).joined(separator: ", "))")
                }
                values[key] = v
            }
            let command = try resolveCommand(def, params: params, file: file, location: where_(def))
            for key in def.runParams where Params.value(at: key, in: params) == nil || def.params.contains(key) {
                throw PipelineError("stage `\(def.name)`: run_params entry `\(key)` \(def.params.contains(key) ? "is also in `params` (a param either changes the results or it does not)" : "is not defined under `params:`")",
                                    location: where_(def), hint: "known params: \(Params.allLeafKeys(params).joined(separator: ", "))")
            }
            let recorded = def.runParams.isEmpty ? command
                : try resolveCommand(def, params: params, file: file, location: where_(def), keeping: Set(def.runParams))
            // Paths may name params too (`deps: [${prepare.input}]`), unquoted: they are not shell words.
            let path = { (text: String) in
                try normalize(substitute(text, field: "a path", stage: def.name, params: params, file: file, location: where_(def),
                                         render: Params.pathText))
            }
            planned.append(PlannedStage(definition: def, command: command, recordedCommand: recorded,
                                        deps: try def.deps.map(path), outs: try def.outs.map(path),
                                        params: values, upstream: []))
        }

        // Each path may be written by one stage only, and outs may not nest.
        var writers: [(stage: String, out: String)] = []
        for stage in planned {
            for out in stage.outs {
                if out == "." {
                    throw PipelineError("stage `\(stage.name)`: the pipeline directory itself cannot be an out",
                                        location: where_(stage.definition), hint: "name the file or directory the stage writes")
                }
                if let other = writers.first(where: { overlaps($0.out, out) }) {
                    let detail = other.out == out ? "both write `\(out)`"
                        : "`\(out)` and `\(other.out)` overlap (one is inside the other)"
                    let who = other.stage == stage.name ? "stage `\(stage.name)` lists overlapping outs"
                        : "stages `\(other.stage)` and `\(stage.name)` write the same path"
                    throw PipelineError("\(who): \(detail)", location: where_(stage.definition),
                                        hint: "each file or directory must have exactly one producing stage")
                }
                writers.append((stage.name, out))
            }
        }

        var edges: [StageEdge] = []
        for (i, stage) in planned.enumerated() {
            for dep in stage.deps {
                let producers = writers.filter { overlaps(dep, $0.out) && $0.stage != stage.name }
                for p in producers where !edges.contains(where: { $0.from == p.stage && $0.to == stage.name && $0.dep == dep }) {
                    edges.append(StageEdge(from: p.stage, to: stage.name, dep: dep, out: p.out))
                }
                let ownOut = stage.outs.contains { overlaps(dep, $0) }
                if producers.isEmpty, !ownOut, checkDisk {
                    let url = dep.hasPrefix("/") ? URL(fileURLWithPath: dep) : file.directory.appendingPathComponent(dep)
                    if !FileManager.default.fileExists(atPath: url.path) {
                        throw PipelineError("stage `\(stage.name)`: dep `\(dep)` does not exist and no stage lists it in `outs`",
                                            location: where_(stage.definition),
                                            hint: "create the file, fix the path, or add the stage that writes it")
                    }
                }
            }
            planned[i].upstream = []
        }

        let order = try topologicalOrder(planned.map(\.name), edges: edges, file: file)
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        var ordered = planned.sorted { position[$0.name]! < position[$1.name]! }
        for i in ordered.indices {
            let ups = Set(edges.filter { $0.to == ordered[i].name }.map(\.from))
            ordered[i].upstream = ups.sorted { position[$0]! < position[$1]! }
        }
        return Pipeline(file: file, params: params, stages: ordered, edges: edges)
    }

    /// The stage's command with every placeholder replaced, except those named in `keeping`.
    static func resolveCommand(_ def: StageDefinition, params: [String: JSONValue], file: PipelineFile, location: String,
                               keeping: Set<String> = []) throws -> String {
        try substitute(def.cmd, field: "cmd", stage: def.name, params: params, file: file, location: location,
                       render: Params.commandText, keeping: keeping)
    }

    /// `text` with each `${group.key}` placeholder replaced by `render` of the param's value
    /// (`${pipeline.file}`: this file's name, as seen from its directory).
    static func substitute(_ text: String, field: String, stage: String, params: [String: JSONValue], file: PipelineFile,
                           location: String, render: (JSONValue) -> String?, keeping: Set<String> = []) throws -> String {
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw PipelineError("stage `\(stage)`: unclosed `${` in \(field)", location: location)
            }
            let key = rest[start.upperBound..<end].trimmingCharacters(in: .whitespaces)
            result += keeping.contains(key) ? "${\(key)}"
                : try placeholderText(key, stage: stage, params: params, file: file, location: location, render: render)
            rest = rest[rest.index(after: end)...]
        }
        result += rest
        return result
    }

    static func placeholderText(_ key: String, stage: String, params: [String: JSONValue], file: PipelineFile, location: String,
                                render: (JSONValue) -> String?) throws -> String {
        if key == "\(PipelineFile.builtinGroup).file" {
            // Commands run in the pipeline's directory, so the file's own name is the path that works there.
            return render(.string(file.url.lastPathComponent))!
        }
        guard let value = Params.value(at: key, in: params) else {
            throw PipelineError("stage `\(stage)`: placeholder `${\(key)}` names a param that is not defined", location: location,
                                hint: "known params: \(Params.allLeafKeys(params).joined(separator: ", ")), pipeline.file")
        }
        guard let text = render(value) else {
            throw PipelineError("stage `\(stage)`: placeholder `${\(key)}` is \(kind(value)); only numbers, strings and bools can go into a command or path",
                                location: location, hint: "point the placeholder at one scalar value, e.g. `${\(key).<name>}`")
        }
        return text
    }

    static func kind(_ v: JSONValue) -> String {
        switch v {
        case .array: return "a list"
        case .object: return "a map"
        case .null: return "null"
        default: return "a scalar"
        }
    }

    static func topologicalOrder(_ names: [String], edges: [StageEdge], file: PipelineFile) throws -> [String] {
        var remaining = names
        var done = Set<String>()
        var order: [String] = []
        while !remaining.isEmpty {
            guard let next = remaining.firstIndex(where: { name in
                edges.allSatisfy { $0.to != name || done.contains($0.from) }
            }) else {
                throw PipelineError("the stages form a cycle: \(findCycle(remaining, edges: edges).joined(separator: " -> "))",
                                    location: file.url.path, hint: "a stage cannot (indirectly) read its own outs")
            }
            done.insert(remaining[next])
            order.append(remaining.remove(at: next))
        }
        return order
    }

    /// A cycle among `nodes` (each has an incoming edge from within the set), as a closed path.
    static func findCycle(_ nodes: [String], edges: [StageEdge]) -> [String] {
        let set = Set(nodes)
        var path: [String] = [nodes[0]]
        while true {
            let current = path.last!
            guard let prev = edges.first(where: { $0.to == current && set.contains($0.from) })?.from else { return path }
            if let i = path.firstIndex(of: prev) {
                return (Array(path[i...]) + [prev]).reversed()
            }
            path.append(prev)
        }
    }

    /// Lexically normalizes a relative path: drops `.` and empty parts, folds `dir/..`.
    public static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if part == "..", absolute, parts.isEmpty { continue }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// True when one path is the other or inside it.
    public static func overlaps(_ a: String, _ b: String) -> Bool {
        isInside(a, b) || isInside(b, a)
    }

    /// True when `path` is `dir` or inside it.
    public static func isInside(_ path: String, _ dir: String) -> Bool {
        if dir == "." { return !path.hasPrefix("/") && !path.hasPrefix("..") }
        return path == dir || path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }

    /// Names of the given stages and everything they (transitively) read from.
    public func upstreamClosure(of names: [String]) -> Set<String> {
        var seen = Set<String>()
        var stack = names
        while let n = stack.popLast() {
            guard seen.insert(n).inserted else { continue }
            stack += stage(named: n)?.upstream ?? []
        }
        return seen
    }

    /// Names of the given stages and everything that (transitively) reads from them.
    public func downstreamClosure(of names: [String]) -> Set<String> {
        var seen = Set<String>()
        var stack = names
        while let n = stack.popLast() {
            guard seen.insert(n).inserted else { continue }
            stack += edges.filter { $0.from == n }.map(\.to)
        }
        return seen
    }
}

import ArtifactKit
import Foundation
import Yams

/// One entry of `stages:` in a pipeline file, exactly as written (placeholders not yet resolved).
public struct StageDefinition: Equatable, Sendable {
    public var name: String
    /// The command template; `${group.key}` placeholders are replaced when the pipeline is planned.
    public var cmd: String
    /// Paths (relative to the pipeline file's directory) the stage reads.
    public var deps: [String] = []
    /// Dotted param keys (`prepare.seed`, or a whole subtree such as `fetch.sources`) the stage depends on.
    public var params: [String] = []
    /// Param keys that change how the stage runs but not what it writes (`train.processes`: the
    /// results must not depend on it). They go into the command that runs, but a change of them
    /// does not make the stage stale: the lock records the command with their placeholders kept.
    public var runParams: [String] = []
    /// Paths (files or directories) the stage writes.
    public var outs: [String] = []
    public var desc: String?
    /// 1-based line of the stage's name in the file, for error messages.
    public var line: Int?
}

/// A parsed pipeline file (`pipeline.yaml`): a tree of params and an ordered list of stages.
///
/// Parsing checks the shape (no unknown keys, the right types); the cross-checks between stages
/// (cycles, overlapping outs, missing deps, unknown params) happen in `Pipeline.plan`.
public struct PipelineFile: Sendable {
    public static let topLevelKeys = ["params", "stages"]
    public static let stageKeys = ["cmd", "deps", "params", "run_params", "outs", "desc"]
    /// The group name reserved for builtin placeholders such as `${pipeline.file}`.
    public static let builtinGroup = "pipeline"

    /// The path of the file as the user gave it.
    public var url: URL
    /// The params tree: group -> key -> any YAML value.
    public var params: [String: JSONValue]
    /// Stages in file order.
    public var stages: [StageDefinition]

    public init(url: URL, params: [String: JSONValue], stages: [StageDefinition]) {
        self.url = url
        self.params = params
        self.stages = stages
    }

    /// The directory of the pipeline file: base of all relative paths and working directory of commands.
    public var directory: URL { url.standardizedFileURL.deletingLastPathComponent() }

    /// The file's name without its extension (`pipeline` for `pipeline.yaml`).
    public var stem: String { url.deletingPathExtension().lastPathComponent }

    /// `<stem>.lock` beside the pipeline file.
    public var lockURL: URL { directory.appendingPathComponent("\(stem).lock") }

    public static func load(url: URL) throws -> PipelineFile {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw PipelineError("cannot read pipeline file", location: url.path,
                                hint: "pass another file with `-f FILE`")
        }
        return try parse(text, url: url)
    }

    public static func parse(_ text: String, url: URL) throws -> PipelineFile {
        let file = url.path
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw PipelineError("not valid YAML: \(Self.describe(error))", location: file)
        }
        guard let root else {
            throw PipelineError("the pipeline file is empty", location: file, hint: "it needs `params:` and `stages:`")
        }
        let top = try mappingEntries(root, what: "the top level", file: file)
        var params: [String: JSONValue] = [:]
        var stages: [StageDefinition] = []
        var sawStages = false
        for (key, value, keyNode) in top {
            switch key {
            case "params":
                if isNull(value) { break }  // `params:` left empty
                let groups = try mappingEntries(value, what: "`params`", file: file)
                for (group, groupValue, groupNode) in groups {
                    if group == builtinGroup {
                        throw PipelineError("the param group `\(builtinGroup)` is reserved for builtins like ${pipeline.file}",
                                            location: Self.at(file, groupNode), hint: "rename the group")
                    }
                    params[group] = try jsonValue(groupValue, file: file)
                }
            case "stages":
                sawStages = true
                if isNull(value) { break }
                for (name, stageNode, nameNode) in try mappingEntries(value, what: "`stages`", file: file) {
                    stages.append(try parseStage(name: name, node: stageNode, nameNode: nameNode, file: file))
                }
            default:
                throw PipelineError("unknown key `\(key)` at the top level (expected one of: \(topLevelKeys.joined(separator: ", ")))",
                                    location: Self.at(file, keyNode))
            }
        }
        if !sawStages {
            throw PipelineError("no `stages:` in the pipeline file", location: file)
        }
        return PipelineFile(url: url, params: params, stages: stages)
    }

    static func isNull(_ node: Node) -> Bool {
        node.scalar != nil && tagName(node) == .null
    }

    static func parseStage(name: String, node: Node, nameNode: Node, file: String) throws -> StageDefinition {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw PipelineError("stage name `\(name)` may only use letters, digits, `_` and `-`", location: at(file, nameNode))
        }
        var cmd: String?
        var stage = StageDefinition(name: name, cmd: "", line: nameNode.mark?.line)
        for (key, value, keyNode) in try mappingEntries(node, what: "stage `\(name)`", file: file) {
            switch key {
            case "cmd":
                guard let s = value.scalar, !isNull(value) else {
                    throw PipelineError("stage `\(name)`: `cmd` must be a string", location: at(file, value))
                }
                cmd = s.string
            case "desc":
                guard let s = value.scalar else {
                    throw PipelineError("stage `\(name)`: `desc` must be a string", location: at(file, value))
                }
                stage.desc = s.string
            case "deps": stage.deps = try stringList(value, key: key, stage: name, file: file)
            case "outs": stage.outs = try stringList(value, key: key, stage: name, file: file)
            case "params": stage.params = try stringList(value, key: key, stage: name, file: file)
            case "run_params": stage.runParams = try stringList(value, key: key, stage: name, file: file)
            default:
                throw PipelineError("unknown key `\(key)` in stage `\(name)` (expected one of: \(stageKeys.joined(separator: ", ")))",
                                    location: at(file, keyNode))
            }
        }
        guard let cmd, !cmd.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw PipelineError("stage `\(name)` has no `cmd`", location: at(file, nameNode))
        }
        stage.cmd = cmd
        return stage
    }

    static func stringList(_ node: Node, key: String, stage: String, file: String) throws -> [String] {
        if isNull(node) { return [] }
        guard let seq = node.sequence else {
            throw PipelineError("stage `\(stage)`: `\(key)` must be a list of strings", location: at(file, node))
        }
        return try seq.map { item in
            guard let s = item.scalar, !isNull(item), !s.string.isEmpty else {
                throw PipelineError("stage `\(stage)`: every entry of `\(key)` must be a non-empty string", location: at(file, item))
            }
            return s.string
        }
    }

    /// The entries of a mapping node in file order, rejecting non-string and duplicate keys.
    static func mappingEntries(_ node: Node, what: String, file: String) throws -> [(String, Node, Node)] {
        guard let mapping = node.mapping else {
            throw PipelineError("\(what) must be a mapping of `key: value`", location: at(file, node))
        }
        var seen = Set<String>()
        var out: [(String, Node, Node)] = []
        for (k, v) in mapping {
            guard let ks = k.scalar?.string else {
                throw PipelineError("keys in \(what) must be plain strings", location: at(file, k))
            }
            guard seen.insert(ks).inserted else {
                throw PipelineError("duplicate key `\(ks)` in \(what)", location: at(file, k))
            }
            out.append((ks, v, k))
        }
        return out
    }

    /// Converts any YAML node to a JSON-like value using YAML's core-schema tag resolution
    /// (so `123` is an int, `"123"` a string, `0.7` a float, `true` a bool, `~` null).
    public static func jsonValue(_ node: Node, file: String) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch tagName(node) {
            case .null: return .null
            case .bool: if let b = node.bool { return .bool(b) }
            case .int: if let i = node.int { return .int(i) }
            case .float: if let d = node.float { return .double(d) }
            default: break
            }
            return .string(scalar.string)
        case .sequence(let seq):
            return .array(try seq.map { try jsonValue($0, file: file) })
        case .mapping:
            var object: [String: JSONValue] = [:]
            for (key, value, _) in try mappingEntries(node, what: "a param map", file: file) {
                object[key] = try jsonValue(value, file: file)
            }
            return .object(object)
        }
    }

    /// Parses one YAML scalar the way a value in the pipeline file would be parsed (for `--set`).
    public static func parseScalar(_ text: String) throws -> JSONValue {
        if text.isEmpty { return .string("") }
        guard let node = try? Yams.compose(yaml: text) else {
            throw PipelineError("`\(text)` is not a valid YAML value")
        }
        guard node.scalar != nil else {
            throw PipelineError("`\(text)` must be a single value (a number, string, bool or null), not a list or map")
        }
        return try jsonValue(node, file: "--set")
    }

    /// The resolved tag (`Tag.name` is not public in Yams; its description is the resolved name).
    static func tagName(_ node: Node) -> Tag.Name {
        Tag.Name(rawValue: node.tag.description)
    }

    static func at(_ file: String, _ node: Node) -> String {
        node.mark.map { "\(file):\($0.line)" } ?? file
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return "\(problem) at line \(mark.line), column \(mark.column)"
        default:
            return "\(error)"
        }
    }
}

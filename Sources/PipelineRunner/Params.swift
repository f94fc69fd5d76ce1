import ArtifactKit
import Foundation

/// Dotted-key access to the params tree (`prepare.seed`, `fetch.sources`) and the comparisons
/// and renderings the runner needs.
public enum Params {
    /// The value at a dotted key, or nil when some part of the path does not exist.
    public static func value(at key: String, in params: [String: JSONValue]) -> JSONValue? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, !first.isEmpty, var current = params[first] else { return nil }
        for part in parts.dropFirst() {
            guard case .object(let object) = current, let next = object[part] else { return nil }
            current = next
        }
        return current
    }

    /// Replaces the value at an existing dotted key; throws when the key does not exist.
    public static func set(_ key: String, to value: JSONValue, in params: inout [String: JSONValue]) throws {
        guard Self.value(at: key, in: params) != nil else {
            throw PipelineError("unknown param `\(key)`", location: "--set \(key)",
                                hint: "known params: \(allLeafKeys(params).joined(separator: ", "))")
        }
        let parts = key.split(separator: ".").map(String.init)
        params[parts[0]] = replacing(params[parts[0]]!, path: Array(parts.dropFirst()), with: value)
    }

    static func replacing(_ node: JSONValue, path: [String], with value: JSONValue) -> JSONValue {
        guard let head = path.first else { return value }
        guard case .object(var object) = node, let child = object[head] else { return node }
        object[head] = replacing(child, path: Array(path.dropFirst()), with: value)
        return .object(object)
    }

    /// Every dotted key that names a non-map value, sorted (for hints).
    public static func allLeafKeys(_ params: [String: JSONValue]) -> [String] {
        var out: [String] = []
        func walk(_ prefix: String, _ v: JSONValue) {
            if case .object(let o) = v, !o.isEmpty {
                for (k, child) in o { walk("\(prefix).\(k)", child) }
            } else {
                out.append(prefix)
            }
        }
        for (k, v) in params { walk(k, v) }
        return out.sorted()
    }

    /// Equality that treats `1` and `1.0` as the same number (a JSON round trip may turn one into the other).
    public static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { k, v in y[k].map { same(v, $0) } ?? false }
        default: return a == b
        }
    }

    /// A short one-line rendering for messages (`123`, `"longest"`, `{...}`), capped in length.
    public static func brief(_ value: JSONValue?) -> String {
        guard let value else { return "(none)" }
        let text: String
        switch value {
        case .string(let s): text = "\"\(s)\""
        default: text = compactJSON(value)
        }
        return text.count > 80 ? String(text.prefix(77)) + "..." : text
    }

    /// Canonical compact JSON (sorted keys) of a value.
    public static func compactJSON(_ value: JSONValue) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? enc.encode(value) else { return value.description }
        return String(decoding: data, as: UTF8.self)
    }

    /// The text a scalar param contributes to a command line.
    ///
    /// Strings that are not a single plain shell word are single-quoted, so a value with a space
    /// or a `;` stays one argument and cannot run anything.
    static func commandText(_ value: JSONValue) -> String? {
        switch value {
        case .int(let i): return String(i)
        case .double(let d): return d.description
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return shellQuoted(s)
        case .null, .array, .object: return nil
        }
    }

    /// A scalar as it goes into a dep or out path: as written, unquoted.
    static func pathText(_ value: JSONValue) -> String? {
        if case .string(let s) = value { return s }
        return commandText(value)
    }

    static func shellQuoted(_ s: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,+@%")
        if !s.isEmpty, s.allSatisfy({ safe.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

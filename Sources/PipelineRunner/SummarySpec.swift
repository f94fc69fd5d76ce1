import ArtifactKit
import Foundation

/// The `summary:` section of an experiments file: what `pipeline experiment summary` shows of a
/// run directory. The runner reads params from the run's lock file and values from JSON files in
/// the run directory as this says; it knows no param or file of its own. See docs/pipeline.md
/// "Experiments" for the keys.
public struct SummarySpec: Codable, Equatable, Sendable {
    /// A run directory of a preset gets a row once this file (relative to it) exists.
    public var done: String
    /// The settings column: the parts that show, joined with ", " (the preset's `settings` text when none shows).
    public var settings: [SettingPart] = []
    /// One column each, after the settings column.
    public var metrics: [MetricColumn] = []
    /// The wall-time column.
    public var wall = WallColumn()

    enum CodingKeys: String, CodingKey, CaseIterable { case done, settings, metrics, wall }
}

/// How a value shows in the table.
public enum SummaryFormat: String, Codable, CaseIterable, Sendable {
    /// Strings as they are, numbers and booleans as the lock file has them.
    case text
    /// A whole number (a value with a fraction does not show).
    case integer
    /// A fraction as a percentage with two decimals: 0.95 -> `95.00%`.
    case percent
    /// A number rounded to whole units: 61.4 -> `61`.
    case seconds

    public func render(_ value: JSONValue) -> String? {
        switch self {
        case .text: return value.description
        case .integer: return value.intValue.map(String.init)
        case .percent: return value.doubleValue.map { String(format: "%.2f%%", $0 * 100) }
        case .seconds: return value.doubleValue.map { String(format: "%.0f", $0) }
        }
    }
}

/// Where a value comes from: a param of the run's lock file, or a key path (`test.accuracy`) in a
/// JSON file relative to the run directory.
public enum SummarySource: Equatable, Sendable {
    case param(String)
    case file(String, key: String)
}

/// One part of the settings column: a param's value, put into `text` at `{}`.
public struct SettingPart: Codable, Equatable, Sendable {
    /// The dotted param name, as the lock file records it (`train.epochs`).
    public var param: String
    public var format = SummaryFormat.text
    /// The part's text; `{}` stands for the value.
    public var text = "{}"
    /// The part does not show when the value (as formatted) is this: the pipeline's default, say.
    public var unless: String?
    /// Text added after the part from another value.
    public var suffix: Suffix?

    enum CodingKeys: String, CodingKey, CaseIterable { case param, format, text, unless, suffix }

    /// A value from another param or a file, put into `text` at `{}`; with `equals`, only when the
    /// value (as formatted) is that.
    public struct Suffix: Codable, Equatable, Sendable {
        public var param: String?
        public var file: String?
        public var key: String?
        public var format = SummaryFormat.text
        public var text = "{}"
        public var equals: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case param, file, key, format, text, equals }

        public var source: SummarySource { param.map { .param($0) } ?? .file(file ?? "", key: key ?? "") }
    }
}

/// A metric column: a number from a JSON file of the run directory.
public struct MetricColumn: Codable, Equatable, Sendable {
    public var title: String
    /// Relative to the run directory.
    public var file: String
    /// A dotted key path into the file's JSON: `test.accuracy`.
    public var key: String
    public var format = SummaryFormat.text

    enum CodingKeys: String, CodingKey, CaseIterable { case title, file, key, format }
}

/// The wall-time column: `experiment.json`'s whole-run seconds and these stages' seconds; for a
/// directory without one, the fallback.
public struct WallColumn: Codable, Equatable, Sendable {
    /// Stages whose seconds are listed, in this order (those that ran).
    public var stages: [String] = []
    public var fallback: Fallback?

    enum CodingKeys: String, CodingKey, CaseIterable { case stages, fallback }

    /// Seconds from a JSON file: `key` plus each of `plus` (0 where missing), put into `text` at `{}`.
    public struct Fallback: Codable, Equatable, Sendable {
        public var file: String
        public var key: String
        public var plus: [String] = []
        public var text = "{} s"

        enum CodingKeys: String, CodingKey, CaseIterable { case file, key, plus, text }
    }
}

// MARK: - Decoding: defaults for the optional keys, unknown keys and a suffix's source are errors.

extension SummarySpec {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        self.init(done: try c.decode(String.self, forKey: .done),
                  settings: try c.decodeIfPresent([SettingPart].self, forKey: .settings) ?? [],
                  metrics: try c.decodeIfPresent([MetricColumn].self, forKey: .metrics) ?? [],
                  wall: try c.decodeIfPresent(WallColumn.self, forKey: .wall) ?? WallColumn())
    }
}

extension SummaryFormat {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let name = try c.decode(String.self)
        guard let format = SummaryFormat(rawValue: name) else {
            throw DecodingError.dataCorruptedError(
                in: c, debugDescription: "unknown format `\(name)` (expected one of: "
                    + SummaryFormat.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        self = format
    }
}

extension SettingPart {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        self.init(param: try c.decode(String.self, forKey: .param),
                  format: try c.decodeIfPresent(SummaryFormat.self, forKey: .format) ?? .text,
                  text: try c.decodeIfPresent(String.self, forKey: .text) ?? "{}",
                  unless: try c.decodeIfPresent(String.self, forKey: .unless),
                  suffix: try c.decodeIfPresent(Suffix.self, forKey: .suffix))
    }
}

extension SettingPart.Suffix {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        let param = try c.decodeIfPresent(String.self, forKey: .param)
        let file = try c.decodeIfPresent(String.self, forKey: .file), key = try c.decodeIfPresent(String.self, forKey: .key)
        let fromParam = param != nil && file == nil && key == nil, fromFile = param == nil && file != nil && key != nil
        guard fromParam || fromFile else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath, debugDescription: "give either `param` or `file` and `key`"))
        }
        self.init(param: param, file: file, key: key, format: try c.decodeIfPresent(SummaryFormat.self, forKey: .format) ?? .text,
                  text: try c.decodeIfPresent(String.self, forKey: .text) ?? "{}",
                  equals: try c.decodeIfPresent(String.self, forKey: .equals))
    }
}

extension MetricColumn {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        self.init(title: try c.decode(String.self, forKey: .title), file: try c.decode(String.self, forKey: .file),
                  key: try c.decode(String.self, forKey: .key),
                  format: try c.decodeIfPresent(SummaryFormat.self, forKey: .format) ?? .text)
    }
}

extension WallColumn {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        self.init(stages: try c.decodeIfPresent([String].self, forKey: .stages) ?? [],
                  fallback: try c.decodeIfPresent(Fallback.self, forKey: .fallback))
    }
}

extension WallColumn.Fallback {
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        self.init(file: try c.decode(String.self, forKey: .file), key: try c.decode(String.self, forKey: .key),
                  plus: try c.decodeIfPresent([String].self, forKey: .plus) ?? [],
                  text: try c.decodeIfPresent(String.self, forKey: .text) ?? "{} s")
    }
}

/// Any key of a mapping, to list the keys a type does not know.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}

extension Decoder {
    /// The keyed container, after checking that the mapping has no key outside `keys` (a typo
    /// would otherwise be ignored).
    func strictContainer<K: CodingKey & CaseIterable>(_ keys: K.Type) throws -> KeyedDecodingContainer<K> {
        let all = try container(keyedBy: AnyCodingKey.self)
        let known = K.allCases.map(\.stringValue)
        for key in all.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorruptedError(forKey: key, in: all, debugDescription: "unknown key (expected one of: "
                                                      + known.joined(separator: ", ") + ")")
        }
        return try container(keyedBy: K.self)
    }
}

/// `summary.metrics[1].format`: where a decoding error is, as the file's keys spell it.
func codingKeyPath(_ path: [CodingKey]) -> String {
    path.reduce("") { text, key in
        if let index = key.intValue { return text + "[\(index)]" }
        return text.isEmpty ? key.stringValue : text + "." + key.stringValue
    }
}

/// A decoding error as one sentence naming the key: "`summary.done` is missing"; and the key path.
func describeDecodingError(_ error: Error) -> (path: String, message: String) {
    guard let error = error as? DecodingError else { return ("", "\(error)") }
    switch error {
    case .keyNotFound(let key, let context):
        let path = codingKeyPath(context.codingPath + [key])
        return (path, "`\(path)` is missing")
    case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
        let path = codingKeyPath(context.codingPath)
        return (path, path.isEmpty ? "the file is not \(typeDescription(type))" : "`\(path)` is not \(typeDescription(type))")
    case .dataCorrupted(let context):
        let path = codingKeyPath(context.codingPath)
        return (path, path.isEmpty ? context.debugDescription : "`\(path)`: \(context.debugDescription)")
    @unknown default:
        return ("", "\(error)")
    }
}

private func typeDescription(_ type: Any.Type) -> String {
    switch String(describing: type) {
    case "String": return "a string"
    case "Scalar": return "a single value"
    case "Int", "Double": return "a number"
    case "Bool": return "true or false"
    case let name where name == "Sequence" || name.hasPrefix("Array"): return "a list"
    default: return "a mapping"
    }
}

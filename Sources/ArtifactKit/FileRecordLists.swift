import Foundation

extension FileRecord {
    /// Records for a stage's inputs, each under its path as given.
    public static func inputs(_ urls: [URL]) throws -> [FileRecord] {
        try urls.map { try of($0, as: $0.path) }
    }

    /// Records for a stage's outputs, each under its name inside `directory` (the manifest's folder).
    public static func outputs(_ names: [String], in directory: URL) throws -> [FileRecord] {
        try names.map { try of(directory.appendingPathComponent($0), as: $0) }
    }
}

extension JSONValue {
    /// Any Encodable value as a JSON value (for manifest params such as a model config).
    public static func encoding<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    /// A finite number, or null (JSON has no NaN).
    public static func number(_ v: Double?) -> JSONValue {
        guard let v, v.isFinite else { return .null }
        return .double(v)
    }
}

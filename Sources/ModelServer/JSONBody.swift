import ArtifactKit
import Foundation
import Hummingbird

typealias JSONBodyValue = JSONValue

/// A request body read as one JSON object with a fixed set of allowed keys: anything else (not
/// JSON, not an object, an unknown key, a value of the wrong type or out of range) is a 400
/// naming the field.
struct JSONBody {
    let fields: [String: JSONValue]

    init(_ data: Data, allowed: Set<String>) throws {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw APIError.invalid("the body is not valid JSON" + (data.isEmpty ? " (it is empty)" : ""))
        }
        guard case .object(let fields) = value else { throw APIError.invalid("the body must be a JSON object") }
        if let extra = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.invalid("unknown field \"\(extra)\" (allowed: \(allowed.sorted().joined(separator: ", ")))", param: extra)
        }
        self.fields = fields
    }

    private func present(_ key: String) -> JSONValue? {
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    func required<T>(_ key: String, _ read: (String) throws -> T?) throws -> T {
        guard let v = try read(key) else { throw APIError.invalid("missing field \"\(key)\"", param: key) }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard case .string(let s) = v else { throw APIError.invalid("\"\(key)\" must be a string", param: key) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = present(key) else { return nil }
        guard case .bool(let b) = v else { throw APIError.invalid("\"\(key)\" must be true or false", param: key) }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = present(key) else { return nil }
        guard case .int(let i) = v, range.contains(i) else {
            throw APIError.invalid("\"\(key)\" must be an integer in \(range.lowerBound)...\(range.upperBound)", param: key)
        }
        return i
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = present(key) else { return nil }
        guard let d = v.doubleValue, range.contains(d) else {
            throw APIError.invalid("\"\(key)\" must be a number in \(range.lowerBound)...\(range.upperBound)", param: key)
        }
        return d
    }

    /// A list of strings (a single string counts as a list of one when `single` is true).
    func strings(_ key: String, single: Bool = false) throws -> [String]? {
        guard let v = present(key) else { return nil }
        if single, case .string(let s) = v { return [s] }
        guard case .array(let items) = v else { throw APIError.invalid("\"\(key)\" must be a list of strings", param: key) }
        return try items.enumerated().map { i, item in
            guard case .string(let s) = item else { throw APIError.invalid("\"\(key)\"[\(i)] must be a string", param: key) }
            return s
        }
    }

    /// The raw value (for shapes the caller checks itself).
    func value(_ key: String) -> JSONValue? { present(key) }
}

/// A JSON response: keys sorted, slashes not escaped, a final newline.
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBytes(value) + [10])))
}

func jsonBytes(_ value: JSONValue) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(value)) ?? Data("null".utf8))
}

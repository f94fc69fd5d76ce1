import ArtifactKit
import CurlClient
import Foundation

/// The book's judge (section 7.8): a larger model behind an Ollama-compatible HTTP endpoint rates
/// each response from 0 to 100. Off by default; `evaluate instruct --judge-url ...` turns it on.
public struct JudgeOptions: Sendable {
    /// Base URL, e.g. http://localhost:11434 (the request goes to {url}/api/chat).
    public var url: String
    /// The book uses llama3 (8B).
    public var model: String = "llama3"
    /// Seconds for one reply (a large model on a CPU is slow).
    public var timeoutSeconds: Double = 300
    public var connectTimeoutSeconds: Double = 5

    public init(url: String, model: String = "llama3") {
        self.url = url
        self.model = model
    }
}

/// The endpoint cannot be used at all (refused connection, timeout, HTTP error, not Ollama's reply shape).
public struct JudgeUnavailable: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public enum Judge {
    /// The book's prompt, with the record formatted by the chapter's `format_input` (the Alpaca
    /// prompt, whatever template the model was trained with, as in the book; for a chat, every
    /// exchange before its last response) and the reference answer (`InstructionRecord.reference`).
    public static func prompt(record: InstructionRecord, modelResponse: String) -> String {
        "Given the input `\(formatPrompt(record, style: .alpaca))` and correct output `\(record.reference)`, " +
            "score the model response `\(modelResponse)` on a scale from 0 to 100, where 100 is the best score. " +
            "Respond with the integer number only."
    }

    /// `prompt(record:modelResponse:)` of an Alpaca entry.
    public static func prompt(entry: InstructionEntry, modelResponse: String) -> String {
        prompt(record: .alpaca(entry), modelResponse: modelResponse)
    }

    /// The request body of the book's `query_model`.
    public static func requestBody(model: String, prompt: String) -> Data {
        let body: JSONValue = .object([
            "model": .string(model),
            "messages": .array([.object(["role": "user", "content": .string(prompt)])]),
            "options": .object(["seed": 123, "temperature": 0, "num_ctx": 2048]),
            "stream": false,
        ])
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(body)) ?? Data()
    }

    /// The score in a reply, as the book's `int(score)`: the whole reply (surrounding whitespace
    /// allowed) must be an integer; we also require 0...100. nil: not a score.
    public static func parseScore(_ reply: String) -> Int? {
        let t = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = Int(t), (0...100).contains(v) else { return nil }
        return v
    }

    /// Sends one prompt; returns the reply text (`message.content`).
    public static func ask(_ prompt: String, options: JudgeOptions) throws -> String {
        let base = options.url.hasSuffix("/") ? String(options.url.dropLast()) : options.url
        let url = base + "/api/chat"
        let status: Int, body: Data
        do {
            (status, body) = try HTTPPost.json(url: url, body: requestBody(model: options.model, prompt: prompt),
                                               timeout: options.timeoutSeconds, connectTimeout: options.connectTimeoutSeconds)
        } catch let e as HTTPUnreachable {
            throw JudgeUnavailable(message: e.message)
        }
        guard status == 200 else {
            let snippet = String(decoding: body.prefix(200), as: UTF8.self)
            throw JudgeUnavailable(message: "\(url) answered HTTP \(status): \(snippet)")
        }
        guard let reply = try? JSONDecoder().decode(JSONValue.self, from: body), let content = reply["message"]?["content"]?.stringValue else {
            throw JudgeUnavailable(message: "\(url) did not answer with Ollama's {\"message\": {\"content\": ...}}: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        return content
    }
}

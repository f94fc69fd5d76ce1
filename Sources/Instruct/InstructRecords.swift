import ArtifactKit
import Foundation

/// The three shapes `prepare instruct` reads (docs/instruct-data.md, "Shapes").
public enum InstructionShape: String, Codable, CaseIterable, Sendable {
    /// `{instruction, input, output}`: the book's `instruction-data.json`.
    case alpaca
    /// `{prompt, completion}`.
    case promptCompletion = "prompt-completion"
    /// `{messages: [{role, content}, ...]}` with roles system, user and assistant.
    case chat

    /// The canonical keys of a record of this shape (before `--field` renames them).
    public var keys: [String] {
        switch self {
        case .alpaca: return ["instruction", "input", "output"]
        case .promptCompletion: return ["prompt", "completion"]
        case .chat: return ["messages"]
        }
    }

    /// How the shape is named in messages: its keys.
    public var summary: String {
        switch self {
        case .alpaca: return "alpaca (instruction/input/output)"
        case .promptCompletion: return "prompt-completion (prompt/completion)"
        case .chat: return "chat (messages of role/content)"
        }
    }
}

/// Who speaks a chat message.
public enum ChatRole: String, Codable, CaseIterable, Sendable {
    case system, user, assistant
}

/// One message of a chat record.
public struct ChatMessage: Codable, Equatable, Sendable {
    public var role: ChatRole
    public var content: String

    public init(_ role: ChatRole, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// One example of instruction data, in the shape it was read in. Every shape reduces to the same
/// two views the templates render: `exchanges` (instruction -> response pairs, for the Alpaca and
/// Phi-3 templates) and `messages` (a conversation, for ChatML).
public enum InstructionRecord: Equatable, Sendable {
    case alpaca(InstructionEntry)
    case promptCompletion(prompt: String, completion: String)
    /// A validated conversation (`InstructionRecords.checkConversation`): at least one assistant
    /// message, each after a system or user message, and the last message the assistant's.
    case chat([ChatMessage])

    public var shape: InstructionShape {
        switch self {
        case .alpaca: return .alpaca
        case .promptCompletion: return .promptCompletion
        case .chat: return .chat
        }
    }

    /// Instruction -> response pairs. A chat gives one pair per assistant message; its
    /// instruction is the system and user messages since the previous assistant message, joined
    /// by a blank line (`input` stays empty).
    public var exchanges: [InstructionEntry] {
        switch self {
        case .alpaca(let entry): return [entry]
        case .promptCompletion(let prompt, let completion): return [InstructionEntry(instruction: prompt, output: completion)]
        case .chat(let messages):
            var result: [InstructionEntry] = []
            var pending: [String] = []
            for m in messages {
                guard m.role == .assistant else { pending.append(m.content); continue }
                result.append(InstructionEntry(instruction: pending.joined(separator: "\n\n"), output: m.content))
                pending = []
            }
            return result
        }
    }

    /// The record as a conversation. An Alpaca entry is one user message (the instruction, and
    /// the input after a blank line when there is one) and the assistant's output.
    public var messages: [ChatMessage] {
        switch self {
        case .alpaca(let e):
            return [ChatMessage(.user, e.input.isEmpty ? e.instruction : e.instruction + "\n\n" + e.input), ChatMessage(.assistant, e.output)]
        case .promptCompletion(let prompt, let completion): return [ChatMessage(.user, prompt), ChatMessage(.assistant, completion)]
        case .chat(let messages): return messages
        }
    }

    /// The answer a generated response is compared with: the output, the completion, or the
    /// last assistant message.
    public var reference: String {
        messages.last(where: { $0.role == .assistant })?.content ?? ""
    }

    /// Number of assistant messages (responses) in the record.
    public var responseCount: Int { exchanges.count }

    /// The record's fields under their canonical keys, in the order they are written.
    var jsonFields: [(String, OrderedJSON)] {
        switch self {
        case .alpaca(let e):
            return [("instruction", .string(e.instruction)), ("input", .string(e.input)), ("output", .string(e.output))]
        case .promptCompletion(let prompt, let completion):
            return [("prompt", .string(prompt)), ("completion", .string(completion))]
        case .chat(let messages):
            return [("messages", .array(messages.map { .object([("role", .string($0.role.rawValue)), ("content", .string($0.content))]) }))]
        }
    }
}

/// A JSON value whose objects keep their key order, written like Python's `json.dumps(indent=4)`.
enum OrderedJSON {
    case string(String)
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    /// `json.dumps(value, indent=4)` from `level` (no final newline); `asciiOnly` is ensure_ascii.
    func pythonIndented(level: Int = 0, asciiOnly: Bool = false) -> String {
        let inner = String(repeating: " ", count: 4 * (level + 1)), outer = String(repeating: " ", count: 4 * level)
        switch self {
        case .string(let s):
            return JSONText.string(s, asciiOnly: asciiOnly)
        case .array(let items):
            if items.isEmpty { return "[]" }
            let body = items.map { inner + $0.pythonIndented(level: level + 1, asciiOnly: asciiOnly) }
            return "[\n" + body.joined(separator: ",\n") + "\n" + outer + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            let body = fields.map { inner + JSONText.string($0.0, asciiOnly: asciiOnly) + ": " + $0.1.pythonIndented(level: level + 1, asciiOnly: asciiOnly) }
            return "{\n" + body.joined(separator: ",\n") + "\n" + outer + "}"
        }
    }
}

extension InstructionRecords {
    /// The records as a JSON list in Python's `json.dump(records, file, indent=4)` layout (no final
    /// newline), each with its canonical keys in order (instruction, input, output / prompt,
    /// completion / messages of role, content), plus `model_response` when `responses` are given.
    /// `asciiOnly` is json.dump's ensure_ascii. For Alpaca records this is the book's layout.
    public static func jsonList(_ records: [InstructionRecord], responses: [String]? = nil, asciiOnly: Bool = false) -> String {
        OrderedJSON.array(records.enumerated().map { i, record in
            .object(record.jsonFields + (responses.map { [("model_response", .string($0[i]))] } ?? []))
        }).pythonIndented(asciiOnly: asciiOnly)
    }

    /// `jsonList` plus a newline, as the split files `train.json`, ... are written.
    public static func encoded(_ records: [InstructionRecord]) -> Data {
        Data((jsonList(records) + "\n").utf8)
    }
}

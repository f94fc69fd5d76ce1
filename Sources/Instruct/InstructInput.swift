import ArtifactKit
import Foundation

/// How an instruction file is laid out: one JSON list, or one JSON object per line.
public enum InstructionFileFormat: String, Codable, CaseIterable, Sendable {
    case json, jsonl

    /// The format a file's extension names: `.json` is a list, `.jsonl` / `.ndjson` one object per line.
    public static func detect(_ url: URL) throws -> InstructionFileFormat {
        switch url.pathExtension.lowercased() {
        case "json": return .json
        case "jsonl", "ndjson": return .jsonl
        default:
            throw PipelineError("cannot tell the format from the extension \"\(url.pathExtension)\" (expected .json, .jsonl or .ndjson)",
                                location: url.path, hint: "pass --format json (one JSON list) or --format jsonl (one object per line)")
        }
    }
}

/// `--field canonical=key`: the key a file uses for one of the canonical field names, so that a
/// file with other key names can be read without rewriting it.
public struct InstructionFields: Equatable, Sendable {
    /// Keys of a record, then keys of a chat message.
    public static let recordKeys = ["instruction", "input", "output", "prompt", "completion", "messages"]
    public static let messageKeys = ["role", "content"]

    /// canonical name -> the file's key, only for the renamed ones.
    public private(set) var renamed: [String: String] = [:]

    public init() {}

    /// Parses `instruction=question` items; an item may hold several, comma-separated
    /// (`instruction=question,output=answer`), and an empty item means none (a pipeline param "").
    public init(parsing items: [String]) throws {
        for item in items {
            for pair in item.split(separator: ",", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw PipelineError("\"\(pair)\" is not canonical=key", location: "--field", hint: "e.g. --field instruction=question --field output=answer")
                }
                guard (Self.recordKeys + Self.messageKeys).contains(parts[0]) else {
                    throw PipelineError("unknown field \"\(parts[0])\" in \"\(pair)\"", location: "--field",
                                        hint: "the fields are \((Self.recordKeys + Self.messageKeys).joined(separator: ", ")); the part after = is your file's key")
                }
                guard renamed[parts[0]] == nil else {
                    throw PipelineError("field \"\(parts[0])\" is mapped twice", location: "--field", hint: "give each field one key")
                }
                renamed[parts[0]] = parts[1]
            }
        }
        // Two fields of one shape (or of a message) may not read one key; across shapes they may
        // (such a record is then ambiguous unless --shape says which shape to read).
        for level in InstructionShape.allCases.map(\.keys) + [Self.messageKeys] {
            let keys = level.map(key)
            if let clash = keys.first(where: { k in keys.filter { $0 == k }.count > 1 }) {
                let fields = level.filter { key($0) == clash }
                throw PipelineError("fields \(fields.joined(separator: " and ")) would both read the key \"\(clash)\"", location: "--field",
                                    hint: "map each field to its own key")
            }
        }
    }

    /// The key the file uses for `canonical`.
    public func key(_ canonical: String) -> String { renamed[canonical] ?? canonical }

    /// How a key is named in messages: `"question"` (the instruction, --field instruction=question).
    func describe(_ canonical: String) -> String {
        guard let own = renamed[canonical] else { return "\"\(canonical)\"" }
        return "\"\(own)\" (the \(canonical), --field \(canonical)=\(own))"
    }

    /// The renamed fields for the manifest.
    public var json: JSONValue { .object(renamed.mapValues { .string($0) }) }
}

/// How to read an instruction file.
public struct InstructionReadOptions: Equatable, Sendable {
    /// nil: from the file's extension.
    public var format: InstructionFileFormat?
    /// nil: detected from the first record's keys (and every record must have that shape).
    public var shape: InstructionShape?
    public var fields = InstructionFields()

    public init(format: InstructionFileFormat? = nil, shape: InstructionShape? = nil, fields: InstructionFields = InstructionFields()) {
        self.format = format
        self.shape = shape
        self.fields = fields
    }
}

/// The records of one file, with where each came from.
public struct InstructionFile: Equatable, Sendable {
    public var records: [InstructionRecord]
    /// "entry 3" (JSON list, 0-based) or "line 7" (JSONL, 1-based), per record, for messages.
    public var places: [String]
    /// The records' shape (nil for an empty file).
    public var shape: InstructionShape?
    public var format: InstructionFileFormat
    /// JSONL lines holding only whitespace: skipped and counted.
    public var skippedBlankLines: Int
}

/// Reading instruction files: JSON list or JSONL, in any of the three shapes, with errors that
/// name the file, the entry or line, and the key. Only blank JSONL lines are skipped (and
/// counted); every other problem refuses the file (docs/instruct-data.md, "Input checks").
public enum InstructionRecords {
    public static let defaultHint = "fix the file (or map its keys with --field, choose the shape with --shape), then rerun `prepare instruct`"

    /// Reads and parses a file; see `parse`.
    public static func read(from url: URL, options: InstructionReadOptions = InstructionReadOptions(),
                            hint: String = defaultHint, missingHint: String? = nil) throws -> InstructionFile {
        let data = try Data.reading(url, what: "the instruction data", missingHint: missingHint ?? "check the path (--input, --train, ...)")
        let format = try options.format ?? InstructionFileFormat.detect(url)
        return try parse(data, source: url.path, format: format, options: options, hint: hint)
    }

    /// Parses a file's bytes: UTF-8, then JSON (a list, or one object per line), then each
    /// element as a record of one shape.
    public static func parse(_ data: Data, source: String, format: InstructionFileFormat = .json,
                             options: InstructionReadOptions = InstructionReadOptions(), hint: String = defaultHint) throws -> InstructionFile {
        let context = RecordContext(source: source, hint: hint, fields: options.fields)
        let body = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data
        try checkUTF8(body, context)
        let (elements, blank) = format == .json ? (try jsonListElements(Data(body), context), 0) : try jsonLinesElements(Data(body), context)
        var shape = options.shape
        var firstPlace = ""
        var records: [InstructionRecord] = []
        records.reserveCapacity(elements.count)
        for (object, place) in elements {
            let found = try options.shape ?? detectShape(object, place: place, context)
            if let known = shape, known != found {
                throw context.error("\(place) is \(found.summary) but \(firstPlace) was \(known.summary): one file holds one shape",
                                    hint: "convert the rows to one shape, or split the file; --shape makes every row read as one shape")
            }
            if shape == nil { shape = found; firstPlace = place }
            records.append(try record(object, shape: found, place: place, context))
        }
        return InstructionFile(records: records, places: elements.map(\.1), shape: shape, format: format, skippedBlankLines: blank)
    }

    /// Where a record is and what to say about a bad one.
    struct RecordContext {
        var source: String
        var hint: String
        var fields: InstructionFields

        /// The error, its hint ending with the command to rerun.
        func error(_ message: String, hint: String? = nil) -> PipelineError {
            let hint = hint ?? self.hint
            return PipelineError(message, location: source, hint: hint.contains("rerun") ? hint : hint + ", then rerun `prepare instruct`")
        }
    }

    /// Invalid UTF-8 is reported with its line (1-based) and byte within the line.
    static func checkUTF8(_ data: Data, _ context: RecordContext) throws {
        guard String(validating: data, as: UTF8.self) == nil, let offset = firstInvalidUTF8(Array(data)) else { return }
        let before = data.prefix(offset)
        let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let byte = offset - (before.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0) + 1
        throw context.error("line \(line) is not valid UTF-8 (byte \(byte) of the line)",
                            hint: "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`), then rerun `prepare instruct`")
    }

    /// Offset of the first byte that does not start a well-formed UTF-8 sequence (no overlong
    /// forms, no surrogates, nothing above U+10FFFF), or nil.
    static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        while i < b.count {
            let c = b[i]
            let n: Int
            switch c {
            case 0..<0x80: n = 1
            case 0xC2...0xDF: n = 2
            case 0xE0...0xEF: n = 3
            case 0xF0...0xF4: n = 4
            default: return i
            }
            guard i + n <= b.count, (1..<n).allSatisfy({ b[i + $0] & 0xC0 == 0x80 }) else { return i }
            if (c == 0xE0 && b[i + 1] < 0xA0) || (c == 0xED && b[i + 1] > 0x9F)
                || (c == 0xF0 && b[i + 1] < 0x90) || (c == 0xF4 && b[i + 1] > 0x8F) { return i }
            i += n
        }
        return nil
    }

    static func jsonListElements(_ data: Data, _ context: RecordContext) throws -> [([String: Any], String)] {
        let top: Any
        do {
            top = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw context.error("not valid JSON: \(syntaxDetail(error, in: data, line: nil))")
        }
        guard let list = top as? [Any] else {
            throw context.error("expected a JSON list of objects (instruction/input/output, prompt/completion, or messages), found \(jsonTypeName(top))",
                                hint: "a file with one object per line is JSONL: name it .jsonl or pass --format jsonl")
        }
        return try list.enumerated().map { i, element in
            guard let object = element as? [String: Any] else {
                throw context.error("entry \(i) is \(jsonTypeName(element)), expected an object (instruction/input/output, prompt/completion, or messages)")
            }
            return (object, "entry \(i)")
        }
    }

    /// One object per non-blank line; whitespace-only lines are skipped and counted.
    static func jsonLinesElements(_ data: Data, _ context: RecordContext) throws -> ([([String: Any], String)], Int) {
        var elements: [([String: Any], String)] = []
        var blank = 0
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }   // the newline that ends the last line
        for (i, line) in lines.enumerated() {
            guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else {
                blank += 1
                continue
            }
            let value: Any
            do {
                value = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
            } catch {
                throw context.error("line \(i + 1) is not valid JSON: \(syntaxDetail(error, in: Data(line), line: i + 1))",
                                    hint: "JSONL holds one complete JSON object per line; a file that is one JSON list needs --format json")
            }
            guard let object = value as? [String: Any] else {
                throw context.error("line \(i + 1) is \(jsonTypeName(value)), expected an object (instruction/input/output, prompt/completion, or messages)")
            }
            elements.append((object, "line \(i + 1)"))
        }
        return (elements, blank)
    }

    /// Foundation's message with its byte offset turned into a line and column. `line` is the
    /// file's line when `data` is a single line of it.
    static func syntaxDetail(_ error: Error, in data: Data, line: Int?) -> String {
        let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        guard let range = detail.range(of: #"character (\d+)"#, options: .regularExpression),
              let offset = Int(detail[range].dropFirst("character ".count)), offset <= data.count else { return detail }
        let before = data.prefix(offset)
        let lineInData = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let column = offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
        return detail + " (line \(line ?? lineInData), column \(column))"
    }

    /// The shape whose keys an object has. None, or keys of several shapes, is an error.
    static func detectShape(_ object: [String: Any], place: String, _ context: RecordContext) throws -> InstructionShape {
        let f = context.fields
        let marks: [(InstructionShape, [String])] = [(.alpaca, ["instruction", "output"]), (.promptCompletion, ["prompt", "completion"]),
                                                     (.chat, ["messages"])]
        let found = marks.filter { _, names in names.contains { object[f.key($0)] != nil } }
        guard found.count == 1 else {
            let keys = object.keys.sorted().joined(separator: ", ")
            if found.isEmpty {
                throw context.error("\(place) matches no shape: it has the keys \(keys.isEmpty ? "(none)" : keys); expected instruction/output (alpaca), prompt/completion, or messages (chat)",
                                    hint: "map your keys with --field, e.g. --field instruction=question --field output=answer")
            }
            throw context.error("\(place) has keys of several shapes (\(found.map(\.0.rawValue).joined(separator: ", "))): \(keys)",
                                hint: "choose one with --shape \(found.map(\.0.rawValue).joined(separator: "|"))")
        }
        return found[0].0
    }

    static func record(_ object: [String: Any], shape: InstructionShape, place: String, _ context: RecordContext) throws -> InstructionRecord {
        func text(_ canonical: String, required: Bool = true) throws -> String {
            try string(in: object, canonical, required: required, place: place, context) ?? ""
        }
        switch shape {
        case .alpaca:
            return .alpaca(InstructionEntry(instruction: try text("instruction"), input: try text("input", required: false), output: try text("output")))
        case .promptCompletion:
            return .promptCompletion(prompt: try text("prompt"), completion: try text("completion"))
        case .chat:
            return .chat(try conversation(object, place: place, context))
        }
    }

    /// The string under `canonical`'s key; nil when it is absent and not required.
    static func string(in object: [String: Any], _ canonical: String, required: Bool, place: String, _ context: RecordContext) throws -> String? {
        let key = context.fields.key(canonical)
        guard let value = object[key] else {
            guard required else { return nil }
            throw context.error("\(place) has no \(context.fields.describe(canonical)) key (it has: \(object.keys.sorted().joined(separator: ", ")))")
        }
        guard let text = value as? String else {
            throw context.error("\(place), key \"\(key)\": expected a string, found \(jsonTypeName(value))")
        }
        return text
    }

    /// A chat's messages, checked by `checkConversation`.
    static func conversation(_ object: [String: Any], place: String, _ context: RecordContext) throws -> [ChatMessage] {
        let key = context.fields.key("messages")
        guard let value = object[key] else {
            throw context.error("\(place) has no \(context.fields.describe("messages")) key (it has: \(object.keys.sorted().joined(separator: ", ")))")
        }
        guard let list = value as? [Any] else {
            throw context.error("\(place), key \"\(key)\": expected a list of {role, content} objects, found \(jsonTypeName(value))")
        }
        let messages = try list.enumerated().map { i, element -> ChatMessage in
            let where_ = "\(place), \(key)[\(i)]"
            guard let m = element as? [String: Any] else {
                throw context.error("\(where_) is \(jsonTypeName(element)), expected an object with role and content")
            }
            let roleName = try string(in: m, "role", required: true, place: where_, context)!
            guard let role = ChatRole(rawValue: roleName) else {
                throw context.error("\(where_): unknown role \"\(roleName)\" (expected system, user or assistant)",
                                    hint: "rename the roles in the file (e.g. human -> user, gpt -> assistant), then rerun `prepare instruct`")
            }
            return ChatMessage(role, try string(in: m, "content", required: true, place: where_, context)!)
        }
        try checkConversation(messages, place: "\(place), \(key)", context)
        return messages
    }

    /// A conversation the model can learn from: at least one assistant message, each after a
    /// system or user message (never first, never right after another assistant message), and
    /// the last message the assistant's (what follows it would teach nothing and `evaluate`
    /// compares the model's answer with the last assistant message).
    static func checkConversation(_ messages: [ChatMessage], place: String, _ context: RecordContext) throws {
        let hint = "every chat needs user (or system) messages each answered by one assistant message, ending with the assistant's; fix or remove the row"
        guard messages.contains(where: { $0.role == .assistant }) else {
            throw context.error("\(place): the conversation has no assistant message\(messages.isEmpty ? " (the list is empty)" : ""): nothing to learn", hint: hint)
        }
        for (i, m) in messages.enumerated() where m.role == .assistant && (i == 0 || messages[i - 1].role == .assistant) {
            throw context.error("\(place)[\(i)] (assistant) has no user or system message before it", hint: hint)
        }
        if let last = messages.last, last.role != .assistant {
            throw context.error("\(place): the conversation ends with a \(last.role.rawValue) message ([\(messages.count - 1)]); the last message must be the assistant's", hint: hint)
        }
    }

    static func jsonTypeName(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        case let n as NSNumber:
            // JSONSerialization gives booleans as NSNumber too, of a class of their own.
            return type(of: n) == type(of: NSNumber(value: true)) ? "a boolean" : "a number"
        default: return "\(type(of: value))"
        }
    }
}

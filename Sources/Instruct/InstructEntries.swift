import ArtifactKit
import Foundation

/// One entry of the chapter-7 instruction data (`instruction-data.json`): a task, an optional
/// input for it, and the desired answer.
public struct InstructionEntry: Codable, Equatable, Sendable {
    public var instruction: String
    /// Empty when the task needs no input (775 of the book's 1,100 entries).
    public var input: String
    public var output: String

    public init(instruction: String, input: String = "", output: String) {
        self.instruction = instruction
        self.input = input
        self.output = output
    }
}

/// Reading and writing instruction entries as JSON, with errors that name the entry and key.
public enum InstructionEntries {
    /// The keys every entry must have; `input` may be absent and then counts as empty, because
    /// the prompt formats already treat an empty input as "no input section".
    static let requiredKeys = ["instruction", "output"]

    /// Parses a JSON list of `{instruction, input, output}` objects.
    ///
    /// Errors (all `PipelineError`, naming `source`): not JSON, not a list, an element that is not
    /// an object, a missing `instruction`/`output`, or a non-string `instruction`/`input`/`output`.
    /// Other keys are ignored. `hint` says what to do about a bad file.
    public static func parse(_ data: Data, source: String,
                             hint: String = "fix the file, or fetch it again with `pipeline run -f pipelines/instruct.yaml fetch`")
        throws -> [InstructionEntry] {
        let top: Any
        do {
            top = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw PipelineError("not valid JSON: \(detail)\(lineAndColumn(of: detail, in: data))", location: source, hint: hint)
        }
        guard let list = top as? [Any] else {
            throw PipelineError("expected a JSON list of objects with instruction/input/output, found \(jsonTypeName(top))",
                                location: source, hint: hint)
        }
        var entries: [InstructionEntry] = []
        entries.reserveCapacity(list.count)
        for (index, element) in list.enumerated() {
            guard let object = element as? [String: Any] else {
                throw PipelineError("entry \(index) is \(jsonTypeName(element)), expected an object with instruction/input/output",
                                    location: source, hint: hint)
            }
            func field(_ key: String, required: Bool) throws -> String {
                guard let value = object[key] else {
                    if required {
                        throw PipelineError("entry \(index) has no \"\(key)\" key (it has: \(object.keys.sorted().joined(separator: ", ")))",
                                            location: source, hint: hint)
                    }
                    return ""
                }
                guard let text = value as? String else {
                    throw PipelineError("entry \(index), key \"\(key)\": expected a string, found \(jsonTypeName(value))",
                                        location: source, hint: hint)
                }
                return text
            }
            entries.append(InstructionEntry(instruction: try field("instruction", required: true),
                                            input: try field("input", required: false),
                                            output: try field("output", required: true)))
        }
        return entries
    }

    /// Reads and parses a file; see `parse`.
    public static func read(from url: URL, hint: String? = nil) throws -> [InstructionEntry] {
        let data = try Data.reading(url, what: "the instruction data",
                                    missingHint: hint ?? "run the fetch stage first (`pipeline run -f pipelines/instruct.yaml fetch`)")
        if let hint { return try parse(data, source: url.path, hint: hint) }
        return try parse(data, source: url.path)
    }

    /// The entries as a JSON list in the book's layout (keys instruction, input, output in that
    /// order, 4-space indentation, like `json.dump(..., indent=4)`), so that `evaluate` can add
    /// `model_response` and emit the book's `instruction-data-with-response.json` shape.
    public static func encoded(_ entries: [InstructionEntry]) -> Data {
        Data((jsonList(entries) + "\n").utf8)
    }

    /// The list written by Python's `json.dump(entries, file, indent=4)` (no final newline): the
    /// keys instruction, input, output (and model_response when `responses` are given) in that
    /// order; `asciiOnly` is json.dump's ensure_ascii (non-ASCII as \uXXXX escapes).
    public static func jsonList(_ entries: [InstructionEntry], responses: [String]? = nil, asciiOnly: Bool = false) -> String {
        var out = "[\n"
        for (i, entry) in entries.enumerated() {
            var fields = [("instruction", entry.instruction), ("input", entry.input), ("output", entry.output)]
            if let responses { fields.append(("model_response", responses[i])) }
            out += "    {\n"
            out += fields.map { "        \"\($0.0)\": \(JSONText.string($0.1, asciiOnly: asciiOnly))" }.joined(separator: ",\n")
            out += i + 1 < entries.count ? "\n    },\n" : "\n    }\n"
        }
        return out + "]"
    }


    /// Foundation reports a byte offset ("around character 1234"); a line number helps more.
    static func lineAndColumn(of detail: String, in data: Data) -> String {
        guard let range = detail.range(of: #"character (\d+)"#, options: .regularExpression),
              let offset = Int(detail[range].dropFirst("character ".count)), offset <= data.count else { return "" }
        let before = data.prefix(offset)
        let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let column = offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
        return " (line \(line), column \(column))"
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

/// The book's file-order split: train = first int(trainFrac*n), test = next int(testFrac*n),
/// validation = the rest (1,100 entries -> 935 / 110 / 55).
public struct InstructionSplit: Equatable, Sendable {
    public var train: Range<Int>
    public var test: Range<Int>
    public var validation: Range<Int>

    public init(count: Int, trainFrac: Double = 0.85, testFrac: Double = 0.1) throws {
        guard trainFrac > 0, trainFrac < 1, testFrac >= 0, testFrac < 1, trainFrac + testFrac < 1 else {
            throw PipelineError("train fraction \(trainFrac) and test fraction \(testFrac) must be in (0, 1) with a sum below 1 (validation is the rest)",
                                location: "--train-frac/--test-frac")
        }
        // Python's int() truncates toward zero, as does Int(Double); the products are computed in
        // the same IEEE doubles, so 0.85 * 1100 = 935.0000000000001 -> 935 exactly as in the book.
        let nTrain = Int(Double(count) * trainFrac)
        let nTest = Int(Double(count) * testFrac)
        train = 0..<nTrain
        test = nTrain..<(nTrain + nTest)
        validation = (nTrain + nTest)..<count
        for (name, range) in [("train", train), ("validation", validation)] where range.isEmpty {
            throw PipelineError("the \(name) split of \(count) entries would be empty (train \(train.count), test \(test.count), validation \(validation.count))",
                                location: "--train-frac/--test-frac", hint: "use more entries or other fractions")
        }
    }
}

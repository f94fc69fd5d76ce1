import ArtifactKit
import Foundation

/// An Ollama Modelfile for an exported GGUF: `ollama create NAME -f Modelfile` in the folder of
/// both files builds a model that applies the prompt template of the model's training.
///
///     FROM ./model.gguf
///     TEMPLATE """...{{ .Prompt }}..."""
///     PARAMETER stop "<|endoftext|>"
///
/// FROM is relative to the Modelfile's folder; TEMPLATE is a Go template in which Ollama puts the
/// user's message at `{{ .Prompt }}` (and a system message at `{{ .System }}`); each stop string
/// ends a response. The template text comes from the caller (the Instruct module's prompt styles
/// know theirs: `PromptStyle.ollamaTemplate`), so this module knows nothing of instruction formats.
public struct OllamaModelfile: Equatable, Sendable {
    public var ggufFileName: String
    public var template: String?
    public var stops: [String]
    /// Extra `PARAMETER name value` lines, e.g. ("temperature", "0") for greedy decoding.
    public var parameters: [(String, String)]

    public init(ggufFileName: String, template: String?, stops: [String] = ["<|endoftext|>"],
                parameters: [(String, String)] = []) {
        self.ggufFileName = ggufFileName
        self.template = template
        self.stops = stops
        self.parameters = parameters
    }

    public static func == (a: OllamaModelfile, b: OllamaModelfile) -> Bool {
        a.ggufFileName == b.ggufFileName && a.template == b.template && a.stops == b.stops
            && a.parameters.map { [$0.0, $0.1] } == b.parameters.map { [$0.0, $0.1] }
    }

    /// The Modelfile's text. A template containing `"""` cannot be quoted and is refused.
    public func render() throws -> String {
        var lines = ["FROM ./\(ggufFileName)"]
        if let template {
            guard !template.contains("\"\"\"") else {
                throw PipelineError("the prompt template contains \"\"\", which a Modelfile cannot quote")
            }
            lines.append("TEMPLATE \"\"\"\(template)\"\"\"")
        }
        for stop in stops { lines.append("PARAMETER stop \(Self.quoted(stop))") }
        for (name, value) in parameters { lines.append("PARAMETER \(name) \(value)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A double-quoted Modelfile string (backslash and quote escaped, newlines as \n).
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Writes the Modelfile atomically to `url`; an existing file is replaced only with `force`.
    public func write(to url: URL, force: Bool = false) throws {
        if FileManager.default.fileExists(atPath: url.path), !force {
            throw PipelineError("the Modelfile already exists", location: url.path, hint: "pass --force to replace it")
        }
        try AtomicFile.write(Data(try render().utf8), to: url)
    }
}

import ArtifactKit
import Foundation

/// What to do with `<|endoftext|>` found in the text.
public enum SpecialTokenHandling: Sendable {
    /// An error, as tiktoken's `encode` raises by default.
    case disallow
    /// Encode it as its id 50256.
    case allow
    /// Encode it as ordinary text (tiktoken's `encode_ordinary`).
    case ordinary
}

/// The `prepare tokenize` format: JSON lines in (each line one JSON string), one JSON array of
/// token ids per line out.
public enum JSONLinesTokenization {
    /// Tokenizes every line of `input`. Nothing is returned unless every line is valid, so a
    /// caller never writes half an output. `source` names the input in error messages.
    public static func tokenize(_ input: Data, source: String = "stdin", with tokenizer: GPT2BPETokenizer,
                                specialTokens: SpecialTokenHandling = .disallow,
                                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> Data {
        let texts = try parseLines(input, source: source)
        let encoded: [[Int]]
        switch specialTokens {
        case .ordinary:
            encoded = tokenizer.encodeOrdinaryBatch(texts, threads: threads)
        case .disallow:
            // Checked here first so that the error can name the line.
            if let index = texts.firstIndex(where: { $0.contains(GPT2BPETokenizer.endOfText) }) {
                throw PipelineError("line \(index + 1) contains the special token \(GPT2BPETokenizer.endOfText), "
                                    + "which is not allowed by default", location: source,
                                    hint: "pass --allow-special to encode it as id \(GPT2BPETokenizer.endOfTextID), "
                                        + "or --ordinary to encode it as text")
            }
            encoded = try tokenizer.encodeBatch(texts, threads: threads)
        case .allow:
            encoded = try tokenizer.encodeBatch(texts, allowedSpecial: [GPT2BPETokenizer.endOfText], threads: threads)
        }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 2)
        for ids in encoded {
            output.append(UInt8(ascii: "["))
            for (position, id) in ids.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                output.append(contentsOf: String(id).utf8)
            }
            output.append(contentsOf: "]\n".utf8)
        }
        return Data(output)
    }

    /// The JSON string on each line (a final newline is optional; "\r\n" line ends are accepted).
    public static func parseLines(_ input: Data, source: String = "stdin") throws -> [String] {
        var lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        let decoder = JSONDecoder()
        var texts = [String]()
        texts.reserveCapacity(lines.count)
        for (index, rawLine) in lines.enumerated() {
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            let example = #"each line must be one JSON string, such as "Hello, world""#
            guard !line.isEmpty else {
                throw PipelineError("line \(index + 1) is empty; \(example)", location: source)
            }
            do {
                texts.append(try decoder.decode(String.self, from: Data(line)))
            } catch {
                let shown = String(decoding: line.prefix(60), as: UTF8.self)
                throw PipelineError("line \(index + 1) is not a JSON string: \(shown)\(line.count > 60 ? "..." : ""); \(example)",
                                    location: source)
            }
        }
        return texts
    }
}

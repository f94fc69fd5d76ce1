import Foundation

/// Errors from encoding or decoding (loading errors are `PipelineError`s naming the file).
public enum TokenizerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The text contains a special token that the caller did not allow (tiktoken raises too).
    case disallowedSpecialToken(String)
    /// A token id outside `0..<vocabularySize`, with its position in the input.
    case idOutOfRange(id: Int, position: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case .disallowedSpecialToken(let token):
            return "the text contains the special token \(token), which is not allowed here; "
                + "allow it (allowedSpecial: [\"\(token)\"], or `prepare tokenize --allow-special`) to encode it "
                + "as its id, or use encodeOrdinary to encode it as ordinary text"
        case let .idOutOfRange(id, position, vocabularySize):
            return "token id \(id) at position \(position) is out of range: GPT-2 ids are 0..<\(vocabularySize)"
        }
    }

    public var errorDescription: String? { description }
}

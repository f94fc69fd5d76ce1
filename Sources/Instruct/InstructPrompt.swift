/// How an instruction entry is turned into text for the model.
///
/// - `alpaca`: the chapter's template (preamble, `### Instruction:`, optional `### Input:`,
///   `### Response:`).
/// - `phi3`: exercise 7.1's shorter template. The `<|user|>` / `<|assistant|>` markers are plain
///   text to the GPT-2 tokenizer (several ordinary tokens each), not special tokens.
public enum PromptStyle: String, Codable, CaseIterable, Sendable {
    case alpaca
    case phi3

    /// The marker that starts the response, as `evaluate` strips it from generated text
    /// (the book removes "### Response:" / "<|assistant|>:" and then trims whitespace).
    public var responseMarker: String {
        switch self {
        case .alpaca: return "### Response:"
        case .phi3: return "<|assistant|>:"
        }
    }
}

/// The book's Alpaca preamble.
public let alpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

/// The prompt: everything the model sees before its answer (the book's `format_input`).
/// The input section is present only when `input` is non-empty, as in the book.
public func formatPrompt(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    switch style {
    case .alpaca:
        var text = alpacaPreamble + "\n\n### Instruction:\n" + entry.instruction
        if !entry.input.isEmpty { text += "\n\n### Input:\n" + entry.input }
        return text
    case .phi3:
        var text = "<|user|>\n" + entry.instruction
        if !entry.input.isEmpty { text += "\n" + entry.input }
        return text
    }
}

/// The response part appended to the prompt for training. For Phi-3 the book's exercise code
/// uses a single newline before `<|assistant|>:` (`f"\n<|assistant|>:\n{output}"`).
public func formatResponse(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    switch style {
    case .alpaca: return "\n\n### Response:\n" + entry.output
    case .phi3: return "\n<|assistant|>:\n" + entry.output
    }
}

/// Prompt and response together: the text a training row is the encoding of.
public func formatFullText(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    formatPrompt(entry, style: style) + formatResponse(entry, style: style)
}

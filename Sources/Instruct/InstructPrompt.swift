/// The template that turns a record into text for the model (`--template`; `--style` is the
/// older name, and the type keeps it).
///
/// - `alpaca`: the chapter's template (preamble, `### Instruction:`, optional `### Input:`,
///   `### Response:`).
/// - `phi3`: exercise 7.1's shorter template (`<|user|>`, `<|assistant|>:`).
/// - `chatml`: `<|im_start|>role\n...<|im_end|>\n` per message.
///
/// All markers are plain text to the GPT-2 tokenizer (several ordinary tokens each): GPT-2 has
/// no special tokens but `<|endoftext|>`. How each shape renders: docs/instruct-data.md, "Templates".
public enum PromptStyle: String, Codable, CaseIterable, Sendable {
    case alpaca
    case phi3
    case chatml

    /// The marker `evaluate` removes from generated text (the book removes "### Response:" /
    /// "<|assistant|>:" and then trims whitespace). Empty for ChatML, whose prompt already ends
    /// with the assistant's header.
    public var responseMarker: String {
        switch self {
        case .alpaca: return "### Response:"
        case .phi3: return "<|assistant|>:"
        case .chatml: return ""
        }
    }

    /// Where a generated response ends when the model goes on after it (nil: at <|endoftext|> only).
    public var responseEnd: String? {
        self == .chatml ? chatMLEnd : nil
    }
}

/// The book's Alpaca preamble.
public let alpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

let chatMLStart = "<|im_start|>"
let chatMLEnd = "<|im_end|>"

/// A piece of a rendered record: the text the model learns to produce (`isResponse`) or the
/// context it is given. With `mask_instructions` only response tokens count in the loss.
public struct TemplateSegment: Equatable, Sendable {
    public var text: String
    public var isResponse: Bool

    public init(_ text: String, isResponse: Bool) {
        self.text = text
        self.isResponse = isResponse
    }
}

extension PromptStyle {
    /// The record as text, in context and response pieces, in order; their concatenation is
    /// the training row's text.
    ///
    /// - alpaca, phi3: per exchange (`InstructionRecord.exchanges`), the prompt as context and
    ///   the response header + answer as response, exactly the book's strings for one exchange;
    ///   later exchanges repeat the instruction header without the Alpaca preamble.
    /// - chatml: every message as `<|im_start|>role\ncontent<|im_end|>\n`; for an assistant
    ///   message the header `<|im_start|>assistant\n` is context and `content<|im_end|>\n` response.
    public func segments(_ record: InstructionRecord) -> [TemplateSegment] {
        switch self {
        case .alpaca, .phi3:
            return record.exchanges.enumerated().flatMap { i, exchange in
                [TemplateSegment(exchangePrompt(exchange, continuing: i > 0), isResponse: false),
                 TemplateSegment(exchangeResponse(exchange), isResponse: true)]
            }
        case .chatml:
            return record.messages.flatMap { m -> [TemplateSegment] in
                let header = chatMLStart + m.role.rawValue + "\n"
                let body = m.content + chatMLEnd + "\n"
                return m.role == .assistant ? [TemplateSegment(header, isResponse: false), TemplateSegment(body, isResponse: true)]
                    : [TemplateSegment(header + body, isResponse: false)]
            }
        }
    }

    /// The prompt of one exchange (the book's `format_input`; the input section only when the
    /// input is non-empty). `continuing`: an exchange after the first one of a conversation.
    func exchangePrompt(_ e: InstructionEntry, continuing: Bool) -> String {
        switch self {
        case .alpaca:
            var text = (continuing ? "" : alpacaPreamble) + "\n\n### Instruction:\n" + e.instruction
            if !e.input.isEmpty { text += "\n\n### Input:\n" + e.input }
            return text
        case .phi3:
            var text = (continuing ? "\n" : "") + "<|user|>\n" + e.instruction
            if !e.input.isEmpty { text += "\n" + e.input }
            return text
        case .chatml:
            preconditionFailure("ChatML renders messages, not exchanges")
        }
    }

    /// The response of one exchange. For Phi-3 the book's exercise code uses a single newline
    /// before `<|assistant|>:` (`f"\n<|assistant|>:\n{output}"`).
    func exchangeResponse(_ e: InstructionEntry) -> String {
        switch self {
        case .alpaca: return "\n\n### Response:\n" + e.output
        case .phi3: return "\n<|assistant|>:\n" + e.output
        case .chatml: preconditionFailure("ChatML renders messages, not exchanges")
        }
    }
}

/// The prompt: everything the model sees before its last answer, which is what `evaluate`
/// generates from. For one Alpaca exchange this is the book's `format_input`; for ChatML it ends
/// with `<|im_start|>assistant\n` (a chat template's generation prompt).
public func formatPrompt(_ record: InstructionRecord, style: PromptStyle = .alpaca) -> String {
    style.segments(record).dropLast().map(\.text).joined()
}

/// The last response piece (for one Alpaca exchange: "\n\n### Response:\n" + output).
public func formatResponse(_ record: InstructionRecord, style: PromptStyle = .alpaca) -> String {
    style.segments(record).last?.text ?? ""
}

/// Prompt and response together: the text a training row is the encoding of.
public func formatFullText(_ record: InstructionRecord, style: PromptStyle = .alpaca) -> String {
    style.segments(record).map(\.text).joined()
}

/// `formatPrompt` of an Alpaca entry.
public func formatPrompt(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    formatPrompt(.alpaca(entry), style: style)
}

/// `formatResponse` of an Alpaca entry.
public func formatResponse(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    formatResponse(.alpaca(entry), style: style)
}

/// `formatFullText` of an Alpaca entry.
public func formatFullText(_ entry: InstructionEntry, style: PromptStyle = .alpaca) -> String {
    formatFullText(.alpaca(entry), style: style)
}

/// The text a chat model continues to answer `messages` (which end with the user's turn): the
/// training template applied to the conversation plus an empty assistant turn, cut where the
/// assistant's words would begin. For Alpaca and Phi-3 that is the prompt followed by the response
/// header (`\n\n### Response:\n`, `\n<|assistant|>:\n`), so the generated tokens are the response
/// itself; for ChatML it ends with `<|im_start|>assistant\n` and the response ends at
/// `<|im_end|>` (`PromptStyle.responseEnd`). A header ends in a newline, which GPT-2's BPE always
/// keeps as its own token before a word, so these tokens are a prefix of the training row's.
public func chatGenerationPrompt(_ messages: [ChatMessage], style: PromptStyle) -> String {
    let record = InstructionRecord.chat(messages + [ChatMessage(.assistant, "")])
    let pieces = style.segments(record)
    switch style {
    case .alpaca, .phi3: return pieces.map(\.text).joined()
    case .chatml: return pieces.dropLast().map(\.text).joined()
    }
}

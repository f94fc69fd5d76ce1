import Foundation

/// The prompt template of a style in the shape Ollama's Modelfile wants (a Go template with the
/// user's message at `{{ .Prompt }}`), rendered by the same code that renders training rows, so
/// an exported model is prompted exactly as it was trained. Used by the GGUF export's Modelfile.
extension PromptStyle {
    /// Ollama's placeholder for the user's message.
    static let ollamaPrompt = "{{ .Prompt }}"

    /// Everything the model sees before it answers one message, up to and including the
    /// response header (alpaca: "...### Instruction:\n{{ .Prompt }}\n\n### Response:\n"; phi3:
    /// "<|user|>\n{{ .Prompt }}\n<|assistant|>:\n"; chatml: the user message then
    /// "<|im_start|>assistant\n").
    public var ollamaTemplate: String {
        switch self {
        case .alpaca, .phi3:
            return formatFullText(InstructionEntry(instruction: Self.ollamaPrompt, input: "", output: ""), style: self)
        case .chatml:
            return formatPrompt(.chat([ChatMessage(.user, Self.ollamaPrompt), ChatMessage(.assistant, "")]), style: self)
        }
    }

    /// Strings that end a response: GPT-2's <|endoftext|>, and the marker of the next turn
    /// (a model trained on one exchange may go on with another).
    public var stopSequences: [String] {
        switch self {
        case .alpaca: return ["<|endoftext|>", "### Instruction:"]
        case .phi3: return ["<|endoftext|>", "<|user|>"]
        case .chatml: return ["<|endoftext|>", chatMLEnd]
        }
    }
}

import Foundation

/// The Jinja chat template (tokenizer_config.json `chat_template`) of each prompt style, so
/// `tokenizer.apply_chat_template(messages)` renders what `train instruct` trained on
/// (InstructPrompt.swift): per user message the style's instruction header, per assistant
/// message its response header and the answer. The generation prompt is what `evaluate
/// instruct` generates from: nothing more for alpaca and phi3 (the model writes the response
/// header itself, and evaluate strips it), `<|im_start|>assistant\n` for chatml.
/// Escapes sit inside Jinja string literals because transformers renders with trim_blocks.
enum ChatTemplate {
    static let alpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

    static func forStyle(_ style: String) -> String? {
        switch style {
        case "alpaca":
            return "{% for m in messages %}{% if m['role'] == 'user' %}{% if loop.first %}{{ '\(alpacaPreamble)' }}{% endif %}"
                + "{{ '\\n\\n### Instruction:\\n' + m['content'] }}{% elif m['role'] == 'assistant' %}"
                + "{{ '\\n\\n### Response:\\n' + m['content'] }}{% endif %}{% endfor %}"
        case "phi3":
            return "{% for m in messages %}{% if m['role'] == 'user' %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
                + "{{ '<|user|>\\n' + m['content'] }}{% elif m['role'] == 'assistant' %}"
                + "{{ '\\n<|assistant|>:\\n' + m['content'] }}{% endif %}{% endfor %}"
        case "chatml":
            return "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
                + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        default:
            return nil
        }
    }
}

#!/usr/bin/env python3
"""Independent reference for how `prepare instruct` renders each record shape in each template,
and which tokens the loss covers with mask_instructions (docs/instruct-data.md, "Templates").

Written from the documented rules, not from the Swift code:
  * exchanges: an Alpaca entry is one (instruction, input, output); prompt-completion is
    (prompt, "", completion); a chat gives one exchange per assistant message whose instruction
    is the system/user messages since the previous assistant message joined by a blank line;
  * alpaca: the book's format_input + "\\n\\n### Response:\\n" + output; later exchanges start
    with "\\n\\n### Instruction:\\n" (no preamble); phi3: "<|user|>\\n" (later "\\n<|user|>\\n")
    + instruction [+ "\\n" + input] + "\\n<|assistant|>:\\n" + output; the response pieces (header
    included) count, spans from len(encode(text before)) to len(encode(text through));
  * chatml: Hugging Face transformers' apply_chat_template with a ChatML template whose
    assistant content + "<|im_end|>\\n" is a {% generation %} block; the spans are its
    assistant_masks (GPT-2 BPE as a tokenizers ByteLevel BPE built from the local vocabulary,
    checked against tiktoken); the prompt is apply_chat_template(messages[:-1],
    add_generation_prompt=True). An Alpaca entry's user message is instruction [+ "\\n\\n" + input].

Writes Tests/Fixtures/instruct/templates.json. Run from the repository root:

    /tmp/refvenv/bin/python tools/reference/make_template_fixture.py [--assets ../shared/assets]
"""
import argparse
import json
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
          "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
          "{% else %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Small records covering every shape and the corners of the rules.
RECORDS = [
    {"instruction": "Rewrite the sentence using a simile.", "input": "The car is very fast.", "output": "The car is as fast as lightning."},
    {"instruction": "Name the author of 'Pride and Prejudice'.", "input": "", "output": "Jane Austen."},
    {"prompt": "Translate to French: good morning", "completion": "Bonjour."},
    {"prompt": "List three colors, one per line.", "completion": "red\ngreen\nblue"},
    {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of Italy?"},
                  {"role": "assistant", "content": "Rome."}]},
    {"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Say hi."},
                  {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Now say bye, politely."},
                  {"role": "assistant", "content": "Goodbye, and take care."}]},
    {"messages": [{"role": "user", "content": "First question?"}, {"role": "user", "content": "Actually, a second one: 3 * 3?"},
                  {"role": "assistant", "content": "9"}, {"role": "system", "content": "Answer in words now."},
                  {"role": "user", "content": "And 2 * 5?"}, {"role": "assistant", "content": "Ten."},
                  {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome – any time. ☃"}]},
]


def local_tiktoken(vocab):
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(vocab / "vocab.bpe"), encoder_json_file=str(vocab / "encoder.json"))
    return tiktoken.Encoding(name="gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


def local_hf(vocab):
    t = Tokenizer(models.BPE.from_file(str(vocab / "encoder.json"), str(vocab / "vocab.bpe")))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=t)


def exchanges(record):
    if "instruction" in record:
        return [(record["instruction"], record.get("input", ""), record["output"])]
    if "prompt" in record:
        return [(record["prompt"], "", record["completion"])]
    result, pending = [], []
    for m in record["messages"]:
        if m["role"] == "assistant":
            result.append(("\n\n".join(pending), "", m["content"]))
            pending = []
        else:
            pending.append(m["content"])
    return result


def messages(record):
    if "instruction" in record:
        user = record["instruction"] + ("\n\n" + record["input"] if record.get("input") else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]
    if "prompt" in record:
        return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]
    return record["messages"]


def pieces(record, template):
    """(text, is_response) pieces for alpaca / phi3."""
    out = []
    for k, (instruction, inp, output) in enumerate(exchanges(record)):
        if template == "alpaca":
            prompt = ("" if k else PREAMBLE) + "\n\n### Instruction:\n" + instruction
            prompt += "\n\n### Input:\n" + inp if inp else ""
            response = "\n\n### Response:\n" + output
        else:
            prompt = ("\n" if k else "") + "<|user|>\n" + instruction + ("\n" + inp if inp else "")
            response = "\n<|assistant|>:\n" + output
        out += [(prompt, False), (response, True)]
    return out


def spans_from_pieces(enc, parts):
    spans, text = [], ""
    for piece, is_response in parts:
        start = len(enc.encode(text))
        text += piece
        if is_response:
            spans.append([start, len(enc.encode(text))])
    return spans


def spans_from_mask(mask):
    spans, start = [], None
    for i, m in enumerate(mask + [0]):
        if m and start is None:
            start = i
        if not m and start is not None:
            spans.append([start, i])
            start = None
    return spans


def render(record, template, enc, hf):
    if template == "chatml":
        msgs = messages(record)
        text = hf.apply_chat_template(msgs, chat_template=CHATML, tokenize=False)
        prompt = hf.apply_chat_template(msgs[:-1], chat_template=CHATML, tokenize=False, add_generation_prompt=True)
        out = hf.apply_chat_template(msgs, chat_template=CHATML, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        tokens, spans = out["input_ids"], spans_from_mask(out["assistant_masks"])
        assert tokens == enc.encode(text), "Hugging Face BPE and tiktoken disagree"
    else:
        parts = pieces(record, template)
        text = "".join(p for p, _ in parts)
        prompt = "".join(p for p, _ in parts[:-1])
        tokens, spans = enc.encode(text), spans_from_pieces(enc, parts)
    return {"text": text, "prompt": prompt, "tokens": tokens, "spans": spans, "reference": exchanges(record)[-1][2]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=Path, default=Path("../shared/assets"))
    parser.add_argument("--out", type=Path, default=Path("Tests/Fixtures/instruct/templates.json"))
    args = parser.parse_args()
    vocab = args.assets / "gpt2"
    enc, hf = local_tiktoken(vocab), local_hf(vocab)
    fixture = {"records": RECORDS, "templates": {t: [render(r, t, enc, hf) for r in RECORDS] for t in ("alpaca", "phi3", "chatml")}}
    args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.out}: {len(RECORDS)} records x 3 templates")


if __name__ == "__main__":
    main()

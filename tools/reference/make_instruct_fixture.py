#!/usr/bin/env python3
"""Independent reference for the chapter-7 instruction data (`prepare instruct`).

Follows the behaviour the book describes (written for this project, not copied):
  * prompt styles: Alpaca (the chapter's `format_input` plus "\\n\\n### Response:\\n{output}")
    and Phi-3 (exercise 7.1: "<|user|>\\n{instruction}" [+ "\\n{input}"] plus
    "\\n<|assistant|>:\\n{output}");
  * split in file order: train = int(0.85 n), test = int(0.1 n), validation = the rest;
  * every full text (prompt + response) encoded with GPT-2 BPE (tiktoken, built from the local
    encoder.json / vocab.bpe so that no network is needed), plus the prompt alone, whose token
    count is where the response starts (exercise 7.2's instruction length);
  * the chapter's custom collate: append one <|endoftext|> (50256), pad with 50256 to the
    longest row + 1, inputs = row[:-1], targets = row[1:], every 50256 target after the first
    becomes -100, optionally targets[:prompt_len - 1] = -100 (exercise 7.2), then truncate
    both to allowed_max_length.

Writes Tests/Fixtures/instruct/reference.json. Run from the repository root:

    /work/venv/bin/python tools/reference/make_instruct_fixture.py [--assets ../shared/assets]
"""
import argparse
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import tiktoken
import torch
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")


def local_gpt2(vocab_dir: Path) -> tiktoken.Encoding:
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_dir / "vocab.bpe"),
        encoder_json_file=str(vocab_dir / "encoder.json"))
    return tiktoken.Encoding(name="gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


def prompt_text(entry, style):
    if style == "alpaca":
        text = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{entry['instruction']}"
        if entry["input"]:
            text += f"\n\n### Input:\n{entry['input']}"
        return text
    text = f"<|user|>\n{entry['instruction']}"
    if entry["input"]:
        text += f"\n{entry['input']}"
    return text


def response_text(entry, style):
    if style == "alpaca":
        return f"\n\n### Response:\n{entry['output']}"
    return f"\n<|assistant|>:\n{entry['output']}"


def split(entries, train_frac=0.85, test_frac=0.1):
    n_train = int(len(entries) * train_frac)
    n_test = int(len(entries) * test_frac)
    return {"train": entries[:n_train],
            "test": entries[n_train:n_train + n_test],
            "validation": entries[n_train + n_test:]}


def rows_sha256(rows):
    """sha256 over, per row: uint32 LE token count, then the tokens as uint16 LE."""
    h = hashlib.sha256()
    for row in rows:
        h.update(struct.pack("<I", len(row)))
        h.update(np.asarray(row, dtype="<u2").tobytes())
    return h.hexdigest()


def texts_sha256(texts):
    """sha256 over the UTF-8 of each text followed by one NUL byte."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


def collate(rows, prompt_lengths=None, pad=50256, ignore=-100, allowed_max_length=None):
    longest = max(len(r) + 1 for r in rows)
    inputs, targets = [], []
    for i, row in enumerate(rows):
        padded = list(row) + [pad] * (longest - len(row))
        x = torch.tensor(padded[:-1])
        y = torch.tensor(padded[1:])
        pad_positions = torch.nonzero(y == pad).flatten()
        if pad_positions.numel() > 1:
            y[pad_positions[1:]] = ignore
        if prompt_lengths is not None:
            y[:max(prompt_lengths[i] - 1, 0)] = ignore
        if allowed_max_length is not None:
            x = x[:allowed_max_length]
            y = y[:allowed_max_length]
        inputs.append(x)
        targets.append(y)
    return torch.stack(inputs).tolist(), torch.stack(targets).tolist()


def main():
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=Path,
                    default=Path(os.environ.get("LLMFT_ASSETS", repo.parent / "shared" / "assets")))
    ap.add_argument("--out", type=Path, default=repo / "Tests" / "Fixtures" / "instruct")
    args = ap.parse_args()

    data_path = args.assets / "instruction-data.json"
    raw = data_path.read_bytes()
    entries = json.loads(raw)
    enc = local_gpt2(args.assets / "gpt2")

    fixture = {
        "source": {"file": "instruction-data.json", "sha256": hashlib.sha256(raw).hexdigest(),
                   "size": len(raw), "entries": len(entries)},
        "row_hash": "sha256 over rows of (uint32 LE count, uint16 LE tokens)",
        "styles": {},
    }
    splits = split(entries)
    fixture["split_sizes"] = {k: len(v) for k, v in splits.items()}

    encoded = {}
    for style in ("alpaca", "phi3"):
        per_style = {}
        for name in ("train", "validation", "test"):
            rows, prompt_lengths, not_prefix = [], [], []
            for i, entry in enumerate(splits[name]):
                prompt = prompt_text(entry, style)
                full = enc.encode(prompt + response_text(entry, style))
                prompt_tokens = enc.encode(prompt)
                if full[:len(prompt_tokens)] != prompt_tokens:
                    not_prefix.append(i)
                rows.append(full)
                prompt_lengths.append(len(prompt_tokens))
            encoded[(style, name)] = (rows, prompt_lengths)
            lengths = [len(r) for r in rows]
            per_style[name] = {
                "rows": len(rows),
                "rows_sha256": rows_sha256(rows),
                "lengths": lengths,
                "prompt_lengths": prompt_lengths,
                "total_tokens": int(sum(lengths)),
                "max_tokens": int(max(lengths)),
                "min_tokens": int(min(lengths)),
                "prompt_not_prefix_rows": not_prefix,
                "first_rows": rows[:3],
                "first_entries": splits[name][:3],
                "first_texts": [prompt_text(e, style) + response_text(e, style) for e in splits[name][:3]],
                "texts_sha256": texts_sha256([prompt_text(e, style) + response_text(e, style) for e in splits[name]]),
            }
        fixture["styles"][style] = per_style

    # The book's worked example of the collate function.
    example = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
    ex_in, ex_tg = collate(example, allowed_max_length=None)
    fixture["worked_example"] = {"rows": example, "inputs": ex_in, "targets": ex_tg}

    # Collated batches of fixed index groups of the training split (the shuffling belongs to `train`).
    groups = {"first8": list(range(0, 8)), "second8": list(range(8, 16)), "mixed": [0, 5, 934, 77, 400]}
    variants = [("plain", None, 1024), ("untruncated", None, None), ("truncated32", None, 32),
                ("masked", "mask", 1024), ("masked_truncated20", "mask", 20)]
    batches = []
    fixture["groups"] = {}
    for style in ("alpaca", "phi3"):
        rows, prompt_lengths = encoded[(style, "train")]
        fixture["groups"][style] = {
            group: {"indices": idx, "rows": [rows[i] for i in idx], "prompt_lengths": [prompt_lengths[i] for i in idx]}
            for group, idx in groups.items()}
        for group, idx in groups.items():
            for variant, mask, allowed in variants:
                batch_rows = [rows[i] for i in idx]
                lens = [prompt_lengths[i] for i in idx] if mask else None
                x, y = collate(batch_rows, prompt_lengths=lens, allowed_max_length=allowed)
                batches.append({"style": style, "group": group, "indices": idx, "variant": variant,
                                "mask_prompt": mask is not None, "allowed_max_length": allowed,
                                "inputs": x, "targets": y})
    fixture["batches"] = batches

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "reference.json"
    out.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes); splits {fixture['split_sizes']}")
    for style in fixture["styles"]:
        for name, s in fixture["styles"][style].items():
            print(f"  {style}/{name}: {s['rows']} rows, {s['total_tokens']} tokens, longest {s['max_tokens']}, "
                  f"prompt-not-prefix {len(s['prompt_not_prefix_rows'])}")


if __name__ == "__main__":
    main()

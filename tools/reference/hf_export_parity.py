#!/usr/bin/env python3
"""Loads the folders `export --to hf` wrote with transformers and PEFT, and writes the fixture the
Swift tests compare against (Tests/Fixtures/hf-export/expected.json).

The exports are of tiny training runs with seeded random weights (Tests/ModelExportTests/
ExportTestRuns.swift), so the Swift tests recreate the same bytes. Steps, from the repository root:

    LLMFT_HF_EXPORT_DIR=/tmp/hf-export-parity swift test -c release -Xswiftc -enable-testing \\
        --disable-swift-testing --skip-build --filter HFExportTests/testWriteExportsForReference
    /tmp/refvenv/bin/python tools/reference/hf_export_parity.py /tmp/hf-export-parity

For every case of <dir>/cases.json it loads <dir>/<folder> with

  lm          AutoTokenizer + GPT2LMHeadModel.from_pretrained (merged LoRA: an untied lm_head),
  lm + PEFT   GPT2LMHeadModel.from_pretrained(<folder>/base) + PeftModel.from_pretrained(base, <folder>),
  classifier  AutoModelForSequenceClassification.from_pretrained (GPT2ForSequenceClassification),
              + PeftModel.from_pretrained over <folder>/base for the adapter,

runs the case's token ids, and compares the logits with ours (<dir>/<case>-ours.f32, float32,
written by the Swift test from our own forward pass): the largest absolute difference over the
full vocabulary is printed and recorded, and must be <= 1e-4. The fixture keeps, per case, the
logits at a few vocabulary columns, the argmax at every position and the sha256 of every exported
file but manifest.json (so the Swift test knows it regenerated the same export, configs included).

It also checks the tokenizer files: AutoTokenizer (fast and slow) must give tiktoken's gpt2 ids
(tiktoken built offline from encoder.json / vocab.bpe in $LLMFT_ASSETS/gpt2 or ../shared/assets/gpt2)
for a few texts, and the chat template of an Alpaca export must render the book's format_input.
"""
import hashlib
import json
import os
import sys

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2LMHeadModel

from make_tokenizer_fixture import offline_gpt2

TOLERANCE = 1e-4
COLUMNS = list(range(8)) + list(range(1000, 50000, 3125)) + list(range(50249, 50257))
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "hf-export", "expected.json")
# encoder.json and vocab.bpe for tiktoken, built offline from them (LLMFT_ASSETS or ../shared/assets).
VOCAB = Path(os.environ.get("LLMFT_ASSETS", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "assets"))) / "gpt2"
TEXTS = ["Hello, world.", "WINNER!! Claim your prize now", " leading space and\nnewline", "<|endoftext|> is text here"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(case, folder):
    cls = AutoModelForSequenceClassification if case["kind"] == "classifier" else GPT2LMHeadModel
    if os.path.exists(os.path.join(folder, "adapter_config.json")):
        from peft import PeftModel
        return PeftModel.from_pretrained(cls.from_pretrained(os.path.join(folder, "base")), folder)
    return cls.from_pretrained(folder)


def file_hashes(folder):
    """sha256 of every exported file but manifest.json (which holds the time it was written)."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            if rel != "manifest.json":
                out[rel] = sha256(os.path.join(dirpath, name))
    return dict(sorted(out.items()))


def run_case(root, name, case):
    folder = os.path.join(root, case["folder"])
    model = load(case, folder).eval()
    tokens = torch.tensor(case["tokens"])
    with torch.no_grad():
        logits = model(input_ids=tokens).logits.float().numpy()
    if case["kind"] == "classifier":
        logits = logits[:, None, :]
    ours = np.fromfile(os.path.join(root, name + "-ours.f32"), dtype="<f4").reshape(case["ours_shape"])
    diff = float(np.abs(ours - logits).max())
    print(f"{name}: logits {list(logits.shape)}, max |ours - reference| = {diff:.3g}")
    assert diff <= TOLERANCE, f"{name}: {diff} > {TOLERANCE}"
    assert (ours.argmax(-1) == logits.argmax(-1)).all(), f"{name}: argmax differs"
    columns = COLUMNS if case["kind"] == "lm" else list(range(logits.shape[-1]))
    return {
        "kind": case["kind"], "tokens": case["tokens"], "columns": columns,
        "logits": logits[:, :, columns].astype(float).tolist(), "argmax": logits.argmax(-1).tolist(),
        "files_sha256": file_hashes(folder), "max_abs_diff": diff,
    }


def check_tokenizer(folder):
    enc = offline_gpt2(VOCAB)
    for fast in [True, False]:
        tok = AutoTokenizer.from_pretrained(folder, use_fast=fast)
        for text in TEXTS:
            want = enc.encode(text, allowed_special={"<|endoftext|>"})
            got = tok(text)["input_ids"]
            assert got == want, f"tokenizer (fast={fast}) {text!r}: {got} != {want}"
            assert tok.decode(got) == text
    return {"texts": TEXTS, "fast_and_slow_match_tiktoken": True}


def check_chat_template(folder):
    """The book's format_input for an entry with and without input, and a two-exchange chat."""
    tok = AutoTokenizer.from_pretrained(folder)
    preamble = ("Below is an instruction that describes a task. "
                "Write a response that appropriately completes the request.")
    one = tok.apply_chat_template([{"role": "user", "content": "Name a color."}], tokenize=False)
    assert one == preamble + "\n\n### Instruction:\nName a color.", repr(one)
    two = tok.apply_chat_template([{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"},
                                   {"role": "user", "content": "C"}], tokenize=False)
    assert two == preamble + "\n\n### Instruction:\nA\n\n### Response:\nB\n\n### Instruction:\nC", repr(two)
    return {"alpaca_matches_format_input": True}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/hf-export-parity"
    cases = json.load(open(os.path.join(root, "cases.json")))
    out = {"tolerance": TOLERANCE, "cases": {}}
    for name in sorted(cases):
        out["cases"][name] = run_case(root, name, cases[name])
    out["tokenizer"] = check_tokenizer(os.path.join(root, cases["instruct"]["folder"]))
    out["chat_template"] = check_chat_template(os.path.join(root, cases["instruct"]["folder"]))
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {os.path.normpath(FIXTURE)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The book's chapter 6 data preparation in pandas + tiktoken, as a timing peer for
`prepare classification` (same inputs, same outputs: three CSVs and padded token arrays).

    /work/venv/bin/python tools/bench/prepare_classification_peer.py TSV GPT2_DIR OUT_DIR
"""
import os
import sys

import numpy as np
import pandas as pd
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str

tsv, gpt2_dir, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
enc = tiktoken.Encoding(
    name="gpt2-local", pat_str=r50k_pat_str,
    mergeable_ranks=data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=os.path.join(gpt2_dir, "vocab.bpe"),
                                                    encoder_json_file=os.path.join(gpt2_dir, "encoder.json")),
    special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)

df = pd.read_csv(tsv, sep="\t", header=None, names=["Label", "Text"])
num_spam = df[df["Label"] == "spam"].shape[0]
ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
balanced = pd.concat([ham_subset, df[df["Label"] == "spam"]])
balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
balanced = balanced.sample(frac=1, random_state=123).reset_index(drop=True)
train_end = int(len(balanced) * 0.7)
validation_end = train_end + int(len(balanced) * 0.1)
parts = {"train": balanced[:train_end], "validation": balanced[train_end:validation_end], "test": balanced[validation_end:]}
max_length = None
for name, part in parts.items():
    part.to_csv(os.path.join(out, name + ".csv"), index=None)
    encoded = [enc.encode(t) for t in part["Text"]]
    if max_length is None:
        max_length = max(len(e) for e in encoded)
    rows = [e[:max_length] + [50256] * (max_length - len(e[:max_length])) for e in encoded]
    np.array(rows, dtype="<u2").tofile(os.path.join(out, name + ".tokens"))
print("max_length", max_length)

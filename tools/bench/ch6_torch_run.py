#!/usr/bin/env python3
"""The peer of the chapter-6 end-to-end timing: the book's default fine-tuning run in PyTorch,
written here from the book's description of it, on the shards our `prepare` stage wrote (the
same 1,045 / 149 / 300 rows of 120 tokens), with random weights like our offline run.

What it does, as the book's chapter-6 run does:
- GPT-2 small (tools/bench/gpt2_torch.py's GPTModel, drop_rate 0, qkv bias), the output head
  replaced by Linear(768, 2); every parameter frozen except the last transformer block, the final
  LayerNorm and the head; AdamW lr 5e-5, weight decay 0.1; 5 epochs of batches of 8 (training
  batches shuffled, last incomplete batch dropped); the loss at the last position.
- every 50 steps (from step 0) the mean loss of 5 training and 5 validation batches; after each
  epoch the accuracy on 5 training and 5 validation batches;
- after training, the accuracy on the full training, validation and test sets.
The frozen layers run in every forward pass: PyTorch has no cache of them (that is the point of
the comparison). Runs on 2 threads (the machine's cores).

Usage:
    /work/venv/bin/python tools/bench/ch6_torch_run.py --prepared runs/x/data/prepared [--steps N]
--steps N stops training after N steps (for a quick check; the timing needs the full run).
Prints one JSON line: training seconds, final-accuracy seconds, total, step and forward medians.
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch import build  # noqa: E402


def read_shard(path):
    """Our classification shard (Sources/DataPrep/ClassificationShard.swift): magic LLMFTCLS, u32
    version, u64 rows, u32 sequence length, u32 pad id, u32 classes, u32 reserved (36 bytes), then
    u16 tokens [rows, seq], i32 labels, i32 lengths."""
    data = open(path, "rb").read()
    if data[:8] != b"LLMFTCLS":
        raise SystemExit(f"{path}: not a classification shard (rerun `pipeline run prepare`)")
    rows, seq = struct.unpack_from("<QI", data, 12)
    tokens = np.frombuffer(data, dtype=np.uint16, count=rows * seq, offset=36).reshape(rows, seq)
    labels = np.frombuffer(data, dtype=np.int32, count=rows, offset=36 + rows * seq * 2)
    if len(data) != 36 + rows * seq * 2 + rows * 8:
        raise SystemExit(f"{path}: size does not match its header")
    return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(labels.astype(np.int64))


def batches(x, y, size, shuffle, drop_last, gen):
    order = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
    end = len(x) - len(x) % size if drop_last else len(x)
    return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, end, size)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    split = {s: read_shard(os.path.join(a.prepared, f"{s}.bin")) for s in ("train", "validation", "test")}
    model, _ = build("124M", classifier=True)
    for p in model.parameters():
        p.requires_grad = False
    for m in (model.trf_blocks[-1], model.final_norm, model.out_head):
        for p in m.parameters():
            p.requires_grad = True
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    gen = torch.Generator().manual_seed(123)
    step_times, forward_times = [], []

    def logits(x):
        return model(x)[:, -1, :]

    def mean_loss(bs):
        model.eval()
        with torch.no_grad():
            out = []
            for x, y in bs:
                t0 = time.perf_counter()
                out.append(torch.nn.functional.cross_entropy(logits(x), y).item())
                forward_times.append(time.perf_counter() - t0)
        model.train()
        return sum(out) / len(out)

    def accuracy(bs):
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in bs:
                t0 = time.perf_counter()
                correct += (logits(x).argmax(-1) == y).sum().item()
                forward_times.append(time.perf_counter() - t0)
                total += len(y)
        model.train()
        return correct / total

    val_batches = batches(*split["validation"], 8, False, False, gen)
    test_batches = batches(*split["test"], 8, False, False, gen)
    start = time.perf_counter()
    step = -1
    done = False
    model.train()
    for epoch in range(5):
        train_batches = batches(*split["train"], 8, True, True, gen)
        for x, y in train_batches:
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits(x), y)
            loss.backward()
            opt.step()
            step_times.append(time.perf_counter() - t0)
            step += 1
            if step % 50 == 0:
                tl, vl = mean_loss(train_batches[:5]), mean_loss(val_batches[:5])
                print(f"ep {epoch + 1} step {step}: train loss {tl:.3f} val loss {vl:.3f} "
                      f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
            if a.steps is not None and step + 1 >= a.steps:
                done = True
                break
        ta, va = accuracy(train_batches[:5]), accuracy(val_batches[:5])
        print(f"epoch {epoch + 1}: train acc {ta:.3f} val acc {va:.3f}", file=sys.stderr, flush=True)
        if done:
            break
    train_seconds = time.perf_counter() - start
    t1 = time.perf_counter()
    final = {s: accuracy(b) for s, b in (("train", batches(*split["train"], 8, True, True, gen)),
                                         ("validation", val_batches), ("test", test_batches))}
    final_seconds = time.perf_counter() - t1
    print(json.dumps({"case": "ch6-run", "impl": "torch", "steps": step + 1, "train_seconds": train_seconds,
                      "final_accuracy_seconds": final_seconds, "total_seconds": train_seconds + final_seconds,
                      "step_median_s": statistics.median(step_times),
                      "forward_median_s": statistics.median(forward_times), "accuracy": final}, sort_keys=True),
          flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch side of the GPT-2 core benchmark: a GPT model equivalent to the book's GPTModel
(separate q/k/v Linear layers, masked multi-head attention, LayerNorm, tanh GELU, FeedForward),
written here from the architecture description, run on 2 threads with random weights.

Usage (tools/bench/run_gpt2.sh calls it):
    /work/venv/bin/python tools/bench/gpt2_torch.py --case forward|forward-cls|train-ch6|train-ch7|generate
        [--model 124M|355M] [--reps N] [--prompt-tokens 20 --new-tokens 30 (generate)]
Prints one JSON line per case, like bench-gpt2.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn

CONFIGS = {
    "124M": dict(vocab_size=50257, context_length=1024, emb_dim=768, n_heads=12, n_layers=12),
    "355M": dict(vocab_size=50257, context_length=1024, emb_dim=1024, n_heads=16, n_layers=24),
}


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, t, _ = x.shape
        split = lambda z: z.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        scores = q @ k.transpose(2, 3)
        scores.masked_fill_(self.mask.bool()[:t, :t], -torch.inf)
        weights = self.dropout(torch.softmax(scores / self.head_dim ** 0.5, dim=-1))
        ctx = (weights @ v).transpose(1, 2).contiguous().view(b, t, self.d_out)
        return self.out_proj(ctx)


class LayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(emb, 4 * emb), GELU(), nn.Linear(4 * emb, emb))

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e = cfg["emb_dim"]
        self.att = MultiHeadAttention(e, e, cfg["context_length"], cfg["drop_rate"], cfg["n_heads"], cfg["qkv_bias"])
        self.ff = FeedForward(e)
        self.norm1, self.norm2 = LayerNorm(e), LayerNorm(e)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx):
        _, t = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(t, device=idx.device))
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_head(self.final_norm(x))


def build(model_name, classifier=False):
    torch.manual_seed(123)
    cfg = dict(CONFIGS[model_name], drop_rate=0.0, qkv_bias=True)
    model = GPTModel(cfg)
    if classifier:
        model.out_head = nn.Linear(cfg["emb_dim"], 2)
    return model, cfg


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed_reps(fn, reps):
    """One untimed warm-up call, then `reps` timed calls; returns their times."""
    fn()
    return [timed(fn) for _ in range(reps)]


def report(fields):
    fields["impl"] = "torch"
    fields["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(fields, sort_keys=True), flush=True)


def forward(model_name, reps, classifier):
    model, cfg = build(model_name, classifier)
    model.eval()
    idx = torch.randint(0, cfg["vocab_size"], (8, 120))
    with torch.no_grad():
        times = timed_reps(lambda: model(idx)[:, -1, :] if classifier else model(idx), reps)
    med = statistics.median(times)
    report({"case": "forward-cls" if classifier else "forward", "model": model_name, "median_s": med, "times": times,
            "tokens_per_s": 960 / med})


def train_steps(case, model_name, reps, model, loss_fn, tokens):
    """Times AdamW training steps (lr 5e-5, weight decay 0.1, over all of the model's parameters)
    on the loss `loss_fn()` returns: one untimed warm-up step, then `reps` timed ones; reports the
    median, the last step's loss and `tokens` (tokens per step) / median."""
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    loss_value = 0.0

    def step():
        nonlocal loss_value
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        loss_value = loss.item()

    times = timed_reps(step, reps)
    med = statistics.median(times)
    report({"case": case, "model": model_name, "median_s": med, "times": times, "loss": loss_value,
            "tokens_per_s": tokens / med})


def train_ch6(model_name, reps):
    model, cfg = build(model_name, classifier=True)
    for p in model.parameters():
        p.requires_grad = False
    for m in (model.trf_blocks[-1], model.final_norm, model.out_head):
        for p in m.parameters():
            p.requires_grad = True
    model.train()
    idx = torch.randint(0, cfg["vocab_size"], (8, 120))
    labels = torch.arange(8) % 2
    train_steps("train-ch6", model_name, reps, model,
                lambda: torch.nn.functional.cross_entropy(model(idx)[:, -1, :], labels), 960)


def train_ch7(model_name, reps):
    model, cfg = build(model_name)
    model.train()
    idx = torch.randint(0, cfg["vocab_size"], (8, 90))
    targets = torch.randint(0, cfg["vocab_size"], (8, 90))
    targets[:, :20] = -100
    train_steps("train-ch7", model_name, reps, model,
                lambda: torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), targets.flatten(), ignore_index=-100),
                720)


def generate(model_name, reps, prompt_tokens=20, new_tokens=30):
    """The book's generate_text_simple loop: full forward over the cropped context per token."""
    model, cfg = build(model_name)
    model.eval()
    idx0 = torch.randint(0, cfg["vocab_size"], (1, prompt_tokens))

    def run():
        idx = idx0
        for _ in range(new_tokens):
            with torch.no_grad():
                logits = model(idx[:, -cfg["context_length"]:])[:, -1, :]
            idx = torch.cat((idx, torch.argmax(logits, dim=-1, keepdim=True)), dim=1)

    times = [timed(run) for _ in range(max(1, reps // 2))]
    med = statistics.median(times)
    report({"case": "generate", "model": model_name, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "uncached_b1_tok_s": new_tokens / med, "times_uncached": times})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="forward")
    ap.add_argument("--model", default="124M")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=20)
    ap.add_argument("--new-tokens", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(2)
    {"forward": lambda: forward(a.model, a.reps, False), "forward-cls": lambda: forward(a.model, a.reps, True),
     "train-ch6": lambda: train_ch6(a.model, a.reps), "train-ch7": lambda: train_ch7(a.model, a.reps),
     "generate": lambda: generate(a.model, a.reps, a.prompt_tokens, a.new_tokens)}[a.case]()

#!/usr/bin/env python3
"""Golden outputs of small random GPT-2 models from Hugging Face transformers / PyTorch, for the
Swift parity tests (llm.c style).

Run from the repository root in the project venv:

    /work/venv/bin/python tools/reference/gpt2_parity.py

Writes Tests/Fixtures/gpt2-parity/<case>.weights.safetensors (parameters named as in
Sources/GPT2/ParameterLayout.swift, config in the metadata) and <case>.golden.safetensors
(inputs, logits, loss, the gradient of every trainable tensor, and a 10-step AdamW loss
trajectory) for two cases:

  lm   GPT2LMHeadModel (tied head), every tensor trainable, next-token targets with -100 entries.
  cls  GPT2Model + Linear(C, 2) with bias on the last position's final-normed hidden state
       (the book's chapter-6 model); only the last block, ln_f and the head are trainable,
       AdamW over those tensors only.

Dropout is 0, activation "gelu_new" (the tanh approximation), LayerNorm eps 1e-5, eager attention.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

from _common import adamw_trajectory, config_json

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "gpt2-parity")
STEPS = 10
LR = 1e-3
WEIGHT_DECAY = 0.1


def hf_config(vocab, ctx, emb, heads, layers):
    cfg = GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=emb, n_layer=layers, n_head=heads,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = "eager"
    return cfg


def randomize(module, gen):
    """Larger-than-default random weights so every gradient is well above float noise."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=gen))


def layout_params(transformer, head=None):
    """(layout name, tensor) pairs from a transformers GPT2Model (+ optional nn.Linear head)."""
    out = [(n, p) for n, p in transformer.named_parameters()]
    if head is not None:
        out += [("out_head.weight", head.weight), ("out_head.bias", head.bias)]
    return out


def save_case(case, params, meta, golden):
    os.makedirs(OUT, exist_ok=True)
    weights = {n: p.detach().clone().contiguous() for n, p in params}
    save_file(weights, os.path.join(OUT, f"{case}.weights.safetensors"), metadata=meta)
    save_file({k: v.detach().contiguous() for k, v in golden.items()},
              os.path.join(OUT, f"{case}.golden.safetensors"), metadata=meta)


def lm_case():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    V, T, C, H, L, B = 512, 32, 64, 4, 2, 3
    model = GPT2LMHeadModel(hf_config(V, T, C, H, L)).float().eval()
    randomize(model.transformer, gen)
    params = layout_params(model.transformer)
    ids = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    targets[0, :5] = -100
    targets[1, 10] = -100
    targets[2, -3:] = -100
    initial = {n: p.detach().clone() for n, p in params}

    def loss_fn():
        logits = model(input_ids=ids).logits
        return logits, torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    logits, loss = loss_fn()
    loss.backward()
    golden = {"input_ids": ids, "targets": targets, "logits": logits, "loss": loss.reshape(1)}
    for n, p in params:
        golden["grad." + n] = p.grad.clone()
    model.zero_grad()
    trajectory = adamw_trajectory(model.parameters(), loss_fn, STEPS, LR, WEIGHT_DECAY)
    golden["trajectory"] = torch.tensor(trajectory)
    golden["after.ln_f.weight"] = model.transformer.ln_f.weight.detach().clone()
    golden["after.h.1.attn.c_attn.weight"] = model.transformer.h[1].attn.c_attn.weight.detach().clone()
    meta = {"config": config_json("parity-lm", V, T, C, H, L, "lm"), "lr": str(LR), "weight_decay": str(WEIGHT_DECAY)}
    save_case("lm", [(n, initial[n]) for n, _ in params], meta, golden)
    print(f"lm: loss {golden['loss'].item():.6f}, trajectory {trajectory[0]:.4f} -> {trajectory[-1]:.4f}")


class Classifier(torch.nn.Module):
    """The book's chapter-6 model: GPT backbone (ending in ln_f) + Linear(C, K), last position."""

    def __init__(self, cfg, classes):
        super().__init__()
        self.transformer = GPT2Model(cfg)
        self.out_head = torch.nn.Linear(cfg.n_embd, classes)

    def forward(self, ids):
        hidden = self.transformer(input_ids=ids).last_hidden_state
        return self.out_head(hidden[:, -1, :])


def cls_case():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)
    V, T, C, H, L, B, K = 512, 24, 64, 4, 3, 4, 2
    model = Classifier(hf_config(V, T, C, H, L), K).float().eval()
    randomize(model, gen)
    params = layout_params(model.transformer, model.out_head)
    initial = {n: p.detach().clone() for n, p in params}
    trainable_prefixes = (f"h.{L - 1}.", "ln_f.", "out_head.")
    for n, p in params:
        p.requires_grad_(n.startswith(trainable_prefixes))
    ids = torch.randint(0, V, (B, T), generator=gen)
    labels = torch.tensor([1, 0, 1, 0])

    def loss_fn():
        logits = model(ids)
        return logits, torch.nn.functional.cross_entropy(logits, labels)

    logits, loss = loss_fn()
    loss.backward()
    golden = {"input_ids": ids, "labels": labels, "logits": logits, "loss": loss.reshape(1)}
    for n, p in params:
        if p.requires_grad:
            golden["grad." + n] = p.grad.clone()
    trajectory = adamw_trajectory([p for _, p in params if p.requires_grad], loss_fn, STEPS, LR, WEIGHT_DECAY)
    golden["trajectory"] = torch.tensor(trajectory)
    golden["after.out_head.weight"] = model.out_head.weight.detach().clone()
    golden[f"after.h.{L - 1}.mlp.c_fc.weight"] = model.transformer.h[L - 1].mlp.c_fc.weight.detach().clone()
    meta = {"config": config_json("parity-cls", V, T, C, H, L, "classifier:2"), "lr": str(LR),
            "weight_decay": str(WEIGHT_DECAY), "trainable": ",".join(trainable_prefixes)}
    save_case("cls", [(n, initial[n]) for n, _ in params], meta, golden)
    print(f"cls: loss {golden['loss'].item():.6f}, trajectory {trajectory[0]:.4f} -> {trajectory[-1]:.4f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    lm_case()
    cls_case()

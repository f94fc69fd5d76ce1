"""Helpers shared by the parity fixture generators gpt2_parity.py and lora_parity.py (imported
as `_common`; running either script puts this folder on sys.path)."""
import json

import torch


def config_json(name, vocab, ctx, emb, heads, layers, head):
    """The model config stored in a fixture's safetensors metadata (dropout 0, qkv bias)."""
    return json.dumps({"name": name, "vocab_size": vocab, "context_length": ctx, "emb_dim": emb,
                       "n_heads": heads, "n_layers": layers, "drop_rate": 0.0, "qkv_bias": True, "head": head})


def adamw_trajectory(params, loss_fn, steps, lr, weight_decay):
    """Runs `steps` AdamW steps (betas 0.9/0.999, eps 1e-8) over `params` on the loss of
    `loss_fn()` (which returns (logits, loss)); returns the loss before each step."""
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        _, loss = loss_fn()
        trajectory.append(loss.item())
        loss.backward()
        opt.step()
    return trajectory

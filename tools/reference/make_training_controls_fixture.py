#!/usr/bin/env python3
"""Reference fixture for the trainer controls (learning-rate schedules and gradient clipping).

Run by a developer in a venv with torch and transformers, not by CI:

    /tmp/refvenv/bin/python tools/reference/make_training_controls_fixture.py \
        --out Tests/Fixtures/training-controls/reference.json

It writes one small JSON file that TrainingKitTests (schedules) and GPT2Tests (clipping) read:
  schedules  for each case: the settings and the learning rate every optimizer step trains with,
             read from the optimizer's param group before optimizer.step(), then
             scheduler.step() (the order of transformers' Trainer), for
             - get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
               get_cosine_schedule_with_warmup (num_cycles 0.5), with warmup 0, a few warmup step
               counts, and warmup from a ratio (ceil(total x ratio), TrainingArguments.get_warmup_steps);
             - get_cosine_with_min_lr_schedule_with_warmup (min_lr);
             - the book's appendix D loop (linear warmup from initial_lr to peak_lr, then cosine
               decay to min_lr), its formula written out as the book's training loop computes it.
  clipping   for a few sets of random gradients (several tensors each): max_norm, the norm
             torch.nn.utils.clip_grad_norm_ returns (before clipping) and the gradients after it;
             one set is below max_norm (nothing changes) and one far above.
"""
import argparse
import json
import math

import torch
import transformers
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_cosine_with_min_lr_schedule_with_warmup, get_linear_schedule_with_warmup)


def scheduler_lrs(make, lr, total):
    """The lr of each of `total` optimizer steps under the scheduler `make(optimizer)`."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=lr)
    sched = make(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def warmup_from_ratio(total, ratio):
    return math.ceil(total * ratio)   # TrainingArguments.get_warmup_steps


def appendix_d_lrs(initial_lr, peak_lr, min_lr, total, warmup):
    """The book's appendix D schedule, step by step as its training loop computes it."""
    lr_increment = (peak_lr - initial_lr) / warmup
    lrs = []
    for global_step in range(total):
        if global_step < warmup:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = (global_step - warmup) / (total - warmup)
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        lrs.append(lr)
    return lrs


def schedules():
    cases = []
    makers = {
        "constant": lambda w, t: (lambda o: get_constant_schedule_with_warmup(o, w)),
        "linear": lambda w, t: (lambda o: get_linear_schedule_with_warmup(o, w, t)),
        "cosine": lambda w, t: (lambda o: get_cosine_schedule_with_warmup(o, w, t, num_cycles=0.5)),
    }
    for kind, make in makers.items():
        for lr, total, warmup, ratio in [(5e-5, 20, 0, None), (5e-5, 20, 5, None), (1e-3, 37, 1, None),
                                         (2e-4, 50, None, 0.1), (3e-4, 13, None, 0.25), (1e-2, 7, 7, None)]:
            w = warmup if ratio is None else warmup_from_ratio(total, ratio)
            cases.append({"source": f"transformers get_{kind}_schedule_with_warmup", "kind": kind, "lr": lr,
                          "total_steps": total, "warmup_steps": w, "warmup_ratio": ratio, "initial_lr": 0.0, "min_lr": 0.0,
                          "lrs": scheduler_lrs(make(w, total), lr, total)})
    for lr, total, warmup, min_lr in [(1e-3, 30, 3, 1e-4), (5e-5, 25, 0, 1e-6)]:
        lrs = scheduler_lrs(lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, warmup, total, min_lr=min_lr), lr, total)
        cases.append({"source": "transformers get_cosine_with_min_lr_schedule_with_warmup", "kind": "cosine", "lr": lr,
                      "total_steps": total, "warmup_steps": warmup, "warmup_ratio": None, "initial_lr": 0.0,
                      "min_lr": min_lr, "lrs": lrs})
    # Appendix D: n_epochs 15, initial_lr 0.0001, peak_lr 0.01, 20% warmup, min_lr 0.1 x initial_lr,
    # with the book's 9 batches per epoch (135 steps) and a shorter run.
    for total in [135, 40]:
        initial_lr, peak_lr = 0.0001, 0.01
        min_lr, warmup = 0.1 * initial_lr, int(0.2 * total)
        cases.append({"source": "book appendix D", "kind": "cosine", "lr": peak_lr, "total_steps": total,
                      "warmup_steps": warmup, "warmup_ratio": None, "initial_lr": initial_lr, "min_lr": min_lr,
                      "lrs": appendix_d_lrs(initial_lr, peak_lr, min_lr, total, warmup)})
    return cases


def clipping():
    gen = torch.Generator().manual_seed(12)
    cases = []
    shapes = [[7], [3, 5], [11], [2, 2, 3]]
    for scale, max_norm in [(1.0, 1.0), (0.05, 1.0), (10.0, 0.5), (1.0, 3.7), (3.0, 2.0)]:
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * scale
        before = [p.grad.flatten().tolist() for p in params]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm)
        cases.append({"max_norm": max_norm, "grads": before, "norm": norm.item(),
                      "clipped": [p.grad.flatten().tolist() for p in params]})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = {"torch": torch.__version__, "transformers": transformers.__version__,
           "schedules": schedules(), "clipping": clipping()}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch peer of the `train instruct` step benchmark: one AdamW step (lr 5e-5, weight decay
0.1) of a randomly initialised GPT-2 small (transformers GPT2LMHeadModel, tied head, dropout 0)
on a batch of 8 x 90 random tokens, CPU, 2 threads. Prints the median of the timed steps.

    /work/venv/bin/python tools/reference/bench_instruct_step.py [STEPS=5]
"""
import statistics
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.set_num_threads(2)
torch.manual_seed(123)
model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
x = torch.randint(0, 50000, (8, 90))
y = torch.randint(0, 50000, (8, 90))
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    opt.zero_grad()
    logits = model(x).logits
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    loss.backward()
    opt.step()
    if i > 0:  # the first step allocates the optimizer state
        times.append(time.perf_counter() - t)
print(f"pytorch {torch.__version__} gpt2-small 8x90 AdamW step: median {statistics.median(times):.3f}s over {len(times)} steps "
      f"({', '.join(f'{t:.2f}' for t in times)})")

#!/usr/bin/env python3
"""Benchmark: GPT-2 small (124M) weights in and out, Swift vs Python, on this machine.

    /work/venv/bin/python tools/reference/weights_bench.py

Writes a randomly initialised GPT-2 small with transformers (GPT2Model.save_pretrained,
497,772,432 bytes) to /tmp/llmft-weights-bench/, times the Python peers (median of runs):

  load_hf_safetensors  safetensors.torch.load_file + torch.cat into one flat buffer + isfinite
                       check: the same work as Swift's loadHFWeights (load_file alone is also
                       printed; it returns tensors over the mapped file without copying)
  save_checkpoint      safetensors.torch.save_file of the same tensors
  load_checkpoint      load_file + flat buffer + sha256 of the float bytes (Swift's
                       loadCheckpoint verifies params_sha256)
  random_init          torch GPT2Model(config) construction (PyTorch's own init)

then runs the Swift side in a release build
(`swift test -c release -Xswiftc -enable-testing --filter WeightsBenchmarkTests`) with
LLMFT_WEIGHTS_BENCH_FILE set, and prints both medians and the Swift/Python ratio.
"""
import hashlib
import os
import re
import statistics
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2Model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = "/tmp/llmft-weights-bench"


def median_time(runs, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    os.makedirs(WORK, exist_ok=True)
    model_dir = os.path.join(WORK, "gpt2-small-random")
    path = os.path.join(model_dir, "model.safetensors")
    if not os.path.exists(path):
        torch.manual_seed(0)
        GPT2Model(GPT2Config()).save_pretrained(model_dir, safe_serialization=True)
    torch.set_num_threads(2)
    py = {}
    state = {}
    def to_flat(tensors):
        flat = torch.cat([t.reshape(-1) for t in tensors.values()])
        assert bool(torch.isfinite(flat).all())
        return flat

    py["load_file_only"] = median_time(5, lambda: state.update(t=load_file(path)))
    py["load_hf_safetensors"] = median_time(5, lambda: to_flat(load_file(path)))
    out = os.path.join(WORK, "py-checkpoint.safetensors")
    py["save_checkpoint"] = median_time(3, lambda: save_file(state["t"], out))
    py["load_checkpoint"] = median_time(
        3, lambda: hashlib.sha256(to_flat(load_file(out)).numpy().tobytes()).hexdigest())
    py["random_init"] = median_time(3, lambda: GPT2Model(GPT2Config()))

    env = dict(os.environ, LLMFT_WEIGHTS_BENCH_FILE=path)
    cmd = ["swift", "test", "-c", "release", "-Xswiftc", "-enable-testing", "--filter", "WeightsBenchmarkTests"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    swift = {m.group(1): float(m.group(2)) for m in re.finditer(r"BENCH (\S+) ([0-9.]+)", res.stdout + res.stderr)}
    if res.returncode != 0 or not swift:
        sys.stdout.write(res.stdout[-4000:] + res.stderr[-4000:])
        sys.exit("swift benchmark failed")
    print(f"machine: {os.cpu_count()} cores; file {os.path.getsize(path)} bytes; torch {torch.__version__}")
    print(f"{'operation':22} {'swift s':>9} {'python s':>9} {'swift/python':>13}")
    for k in ["load_hf_safetensors", "save_checkpoint", "load_checkpoint", "random_init"]:
        print(f"{k:22} {swift[k]:9.3f} {py[k]:9.3f} {swift[k] / py[k]:13.2f}")
    print(f"{'(python load_file only)':22} {'':9} {py['load_file_only']:9.3f}")


if __name__ == "__main__":
    main()

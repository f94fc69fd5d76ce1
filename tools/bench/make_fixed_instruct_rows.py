#!/usr/bin/env python3
"""Writes a prepared-instruction folder whose rows all have LENGTH tokens, so that every batch of
`train instruct` is exactly batch x LENGTH (the collate function pads to the longest row + 1 and
takes padded[:-1]). Format: docs/instruct-data.md. Benchmark input only (random ids, seed 0).

    python3 make_fixed_instruct_rows.py OUT [ROWS=64] [LENGTH=90]
"""
import hashlib
import json
import os
import random
import struct
import sys

out = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 64
length = int(sys.argv[3]) if len(sys.argv) > 3 else 90
rng = random.Random(0)
os.makedirs(out, exist_ok=True)


def shard(n):
    ids = [rng.randrange(50000) for _ in range(n * length)]
    b = b"LLMFTINS" + struct.pack("<IQQ", 1, n, n * length)
    b += struct.pack(f"<{n + 1}Q", *[i * length for i in range(n + 1)])
    b += struct.pack(f"<{n * length}H", *ids)
    b += struct.pack(f"<{n}I", *([length // 2] * n))
    return b


outputs = []
for name, n in [("train", rows), ("validation", 8), ("test", 8)]:
    for fname, data in [(f"{name}.bin", shard(n)),
                        (f"{name}.json", json.dumps([{"instruction": "x", "input": "", "output": "y"}] * n, indent=4).encode())]:
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
        outputs.append({"path": fname, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
manifest = {"format": "instruction-dataset", "formatVersion": 1, "tool": "make_fixed_instruct_rows.py", "toolVersion": "0",
            "createdAt": "1970-01-01T00:00:00Z", "params": {"style": "alpaca", "allowed_max_length": 1024},
            "inputs": [], "outputs": outputs, "stats": {"rows_tokens": length}}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)

"""FLOP count of the chapter-6 run as `train` + `evaluate` do it, for the floor "FLOPs / 140 GFLOP/s".

Counts matrix-multiply and attention FLOPs (2 per multiply-add) of GPT-2 small with the frozen-trunk
cache: the frozen blocks once per train/validation row, the trainable top block forward + backward
(backward = 2 x forward) per step, the evaluation passes, and evaluate's full forward of all rows.
Reads the real lengths from the shards, so `flexible` (batches cut to their longest real row) is
counted exactly for the cache, the evaluations and evaluate; for the training steps it uses each
epoch's mean batch length under a random order (the exact order is our generator's).

    python tools/bench/flops_ch6.py data/prepared [last|flexible] [epochs] [--dense]
(--dense: the whole last block on every position, as before the pooled-position shortcut)
"""
import random
import struct
import sys

C, L, V = 768, 12, 50257
BATCH, EPOCHS, EVAL_FREQ, EVAL_ITER = 8, 5, 50, 5


def shard(path):
    with open(path, "rb") as f:
        data = f.read()
    rows, seq = struct.unpack_from("<QI", data, 12)
    off = 36 + 2 * rows * seq + 4 * rows
    lengths = struct.unpack_from(f"<{rows}i", data, off)
    return seq, list(lengths)


def block_fwd(tokens_per_row):
    """Forward FLOPs of one block over rows of the given lengths (causal attention: t+1 keys at t)."""
    total = 0
    for t in tokens_per_row:
        total += 2 * 12 * C * C * t          # c_attn 3C^2, c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2
        total += 2 * 2 * C * t * (t + 1) / 2  # QK^T and PV over the causal half
    return total


def last_block_selected(tokens_per_row, backward):
    """The last block with everything after attention at one position per row (TrunkSelected.swift):
    ln_1 + c_attn on every token (3C^2 multiply-adds), the rest (9C^2) on one row per sequence;
    backward: c_attn's dW and dX on every token (6C^2), 2 x the rest on one row."""
    total = 0
    for t in tokens_per_row:
        per_token = 3 * C * C * (3 if backward else 1)
        per_row = 9 * C * C * (3 if backward else 1) + 2 * C * t * (3 if backward else 1)
        total += 2 * (per_token * t + per_row)
    return total


def main():
    global EPOCHS
    d, position = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "last")
    if len(sys.argv) > 3 and sys.argv[3].isdigit():
        EPOCHS = int(sys.argv[3])
    seq, train = shard(f"{d}/train.bin")
    _, val = shard(f"{d}/validation.bin")
    _, test = shard(f"{d}/test.bin")
    need = (lambda n: seq) if position == "last" else (lambda n: max(1, n))

    def batched(lengths):  # rows of one batch all run at the batch's longest needed length
        out = []
        for i in range(0, len(lengths), BATCH):
            b = lengths[i:i + BATCH]
            out += [max(need(n) for n in b)] * len(b)
        return out

    cache = (L - 1) * block_fwd(sorted(need(n) for n in train + val))  # grouped by length
    steps_per_epoch = len(train) // BATCH
    rng = random.Random(0)
    step_tokens = []
    for _ in range(EPOCHS):
        order = train[:]
        rng.shuffle(order)
        step_tokens += batched(order[:steps_per_epoch * BATCH])
    shortcut = "--dense" not in sys.argv   # the released code runs the last block at the pooled position only
    steps = last_block_selected(step_tokens, True) if shortcut else 3 * block_fwd(step_tokens)
    evals = len(range(0, EPOCHS * steps_per_epoch, EVAL_FREQ)) + EPOCHS
    eval_rows = EVAL_ITER * BATCH
    ev_rows = batched(train[:eval_rows]) + batched(val[:eval_rows])
    ev = evals * (last_block_selected(ev_rows, False) if shortcut else block_fwd(ev_rows))
    evaluate = L * block_fwd(sorted(need(n) for n in train + val + test))
    total = cache + steps + ev + evaluate
    for name, v in [("frozen-trunk cache", cache), ("training steps", steps), ("evaluations", ev),
                    ("evaluate (all rows)", evaluate), ("total", total)]:
        print(f"{name:22s} {v / 1e12:7.2f} TFLOP  floor {v / 140e9:6.1f} s")


main()

"""FLOP count of the chapter-6 run as `train` + `evaluate` do it, for the floor "FLOPs / 140 GFLOP/s".

Counts matrix-multiply and attention FLOPs (2 per multiply-add) of GPT-2 small with the frozen-trunk
cache: the frozen blocks once per train/validation/test row (train writes them to trunk.bin), the
trainable top block forward + backward (backward = 2 x forward) per step, the evaluation passes, and
evaluate's pass of the last block over every row from trunk.bin.
Reads the real lengths from the shards, so `flexible` (batches cut to their longest real row) is
counted exactly for the cache, the evaluations and evaluate; for the training steps it uses each
epoch's mean batch length under a random order (the exact order is our generator's).

    python tools/bench/flops_ch6.py data/prepared [last|flexible] [epochs] [--dense] [--unshared] [--kv] [--no-dedupe]
(--dense: the whole last block on every position, as before the pooled-position shortcut;
 --unshared: as before trunk.bin: the cache over train + validation only, evaluate runs all 12
 blocks over every row, and c_attn's query columns run on every position;
 --kv: the selected last block with keys and values on every position (before 9dc0458);
 --no-dedupe: repeated rows run through the frozen layers again (before 4c7d7fc))
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
    tokens = struct.unpack_from(f"<{rows * seq}H", data, 36)
    off = 36 + 2 * rows * seq + 4 * rows
    lengths = struct.unpack_from(f"<{rows}i", data, off)
    return seq, list(lengths), [tokens[r * seq:(r + 1) * seq] for r in range(rows)]


def block_fwd(tokens_per_row):
    """Forward FLOPs of one block over rows of the given lengths (causal attention: t+1 keys at t)."""
    total = 0
    for t in tokens_per_row:
        total += 2 * 12 * C * C * t          # c_attn 3C^2, c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2
        total += 2 * 2 * C * t * (t + 1) / 2  # QK^T and PV over the causal half
    return total


def last_block_selected(tokens_per_row, backward, variant="absorbed"):
    """The last block with everything after attention at one position per row (TrunkSelected.swift).
    absorbed (the released code): no keys or values are formed; per row the query (C^2), W_k q and
    the value output (C^2 each per row, summed over heads) and the rest (9C^2), plus two passes of
    H x t x C over the row's normalised inputs (scores, then their weighted sum).
    kv (before 9dc0458): c_attn's key and value columns on every token (2C^2), query and rest (10C^2)
    per row, attention 2Ct. query_everywhere (the earlier code): all of c_attn (3C^2) on every token.
    Backward: 2 x each."""
    H = 12
    total = 0
    k = 3 if backward else 1
    for t in tokens_per_row:
        if variant == "absorbed":
            per_token, per_row = 0, 12 * C * C * k + 2 * H * C * t * k
        else:
            per_token = (3 if variant == "query_everywhere" else 2) * C * C * k
            per_row = (9 if variant == "query_everywhere" else 10) * C * C * k + 2 * C * t * k
        total += 2 * (per_token * t + per_row)
    return total


def main():
    global EPOCHS
    d, position = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "last")
    if len(sys.argv) > 3 and sys.argv[3].isdigit():
        EPOCHS = int(sys.argv[3])
    seq, train, train_tok = shard(f"{d}/train.bin")
    _, val, val_tok = shard(f"{d}/validation.bin")
    _, test, test_tok = shard(f"{d}/test.bin")
    need = (lambda n: seq) if position == "last" else (lambda n: max(1, n))
    # The frozen layers run once per distinct row (its needed tokens and real length); repeats copy.
    distinct = {}
    for n, tok in zip(train + val + test, train_tok + val_tok + test_tok):
        distinct.setdefault((tuple(tok[:need(n)]), n), n)

    def batched(lengths):  # rows of one batch all run at the batch's longest needed length
        out = []
        for i in range(0, len(lengths), BATCH):
            b = lengths[i:i + BATCH]
            out += [max(need(n) for n in b)] * len(b)
        return out

    unshared = "--unshared" in sys.argv
    cached_rows = train + val if unshared else train + val + test
    if not unshared and "--no-dedupe" not in sys.argv:
        cached_rows = list(distinct.values())
    cache = (L - 1) * block_fwd(sorted(need(n) for n in cached_rows))  # grouped by length
    steps_per_epoch = len(train) // BATCH
    rng = random.Random(0)
    step_tokens = []
    for _ in range(EPOCHS):
        order = train[:]
        rng.shuffle(order)
        step_tokens += batched(order[:steps_per_epoch * BATCH])
    shortcut = "--dense" not in sys.argv   # the released code runs the last block at the pooled position only
    variant = "query_everywhere" if unshared else "kv" if "--kv" in sys.argv else "absorbed"
    steps = last_block_selected(step_tokens, True, variant) if shortcut else 3 * block_fwd(step_tokens)
    evals = len(range(0, EPOCHS * steps_per_epoch, EVAL_FREQ)) + EPOCHS
    eval_rows = EVAL_ITER * BATCH
    ev_rows = batched(train[:eval_rows]) + batched(val[:eval_rows])
    ev = evals * (last_block_selected(ev_rows, False, variant) if shortcut else block_fwd(ev_rows))
    all_rows = sorted((need(n) for n in train + val + test), reverse=True)
    if unshared:
        evaluate = L * block_fwd(all_rows)
    else:  # evaluate: the last block from trunk.bin, in chunks of 16 rows grouped by length
        chunked = []
        for i in range(0, len(all_rows), 16):
            chunked += [all_rows[i]] * len(all_rows[i:i + 16])
        evaluate = last_block_selected(chunked, False, variant) if shortcut else block_fwd(chunked)
    total = cache + steps + ev + evaluate
    for name, v in [("frozen-trunk cache", cache), ("training steps", steps), ("evaluations", ev),
                    ("evaluate", evaluate), ("total", total)]:
        print(f"{name:22s} {v / 1e12:7.2f} TFLOP  floor {v / 140e9:6.1f} s")


main()

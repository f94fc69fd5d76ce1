#!/usr/bin/env python3
"""What data-parallel training over N machines costs per step, on paper (docs/distributed.md,
"Cost model"). Standard library only.

    tools/mpi/cost_model.py counts                          # floats all-reduced per step, per case
    tools/mpi/cost_model.py counts --check-transformers     # the GPT-2 counts against transformers
    tools/mpi/cost_model.py allreduce                       # seconds per all-reduce, every case
    tools/mpi/cost_model.py table --case ch6-last --step 0.08 --serial 0.008 --batch 8
    tools/mpi/cost_model.py table --floats 124439808 --step 6.4 --batch 8 --latency 50e-6

The model. A step of one process takes `step` seconds: `serial` of them (the AdamW update over
every trainable parameter, which every rank repeats) and `step - serial` of forward and backward
over the batch's rows, which N ranks share (the busiest rank has ceil(batch / N) of the rows).
After its backward, every rank sums the gradients with one ring all-reduce of B = 4 * floats
bytes (float32): N - 1 reduce-scatter steps then N - 1 all-gather steps, each sending and
receiving B / N bytes per rank over its own link, so

    t_allreduce(N) = 2 (N - 1) / N * B / link_bandwidth + 2 (N - 1) * latency

    t_step(N) = (step - serial) * ceil(batch / N) / batch + serial + t_allreduce(N)
    speed-up(N) = step / t_step(N)          (same global batch, so the same number of steps)

Nothing overlaps here (one fused buffer reduced after the whole backward pass); reducing buckets
during the backward pass could hide up to min(t_allreduce, backward time) of it. `link` is the
nominal line rate: TCP reaches about 90-95% of it on a quiet Ethernet link (`--efficiency`).
"""
import argparse
import math
import sys

VOCAB, CONTEXT = 50257, 1024
CONFIGS = {"gpt2-small": (12, 768), "gpt2-medium": (24, 1024), "gpt2-large": (36, 1280), "gpt2-xl": (48, 1600)}


def block_floats(width):
    """One transformer block: c_attn C x 3C + 3C, c_proj C x C + C, c_fc C x 4C + 4C,
    mlp.c_proj 4C x C + C, two LayerNorms 2 x 2C: 12 C^2 + 13 C."""
    return 12 * width * width + 13 * width


def model_floats(layers, width):
    """GPT-2 with the LM head tied to wte (counted once): wte + wpe + blocks + ln_f."""
    return VOCAB * width + CONTEXT * width + layers * block_floats(width) + 2 * width


def lora_floats(layers, width, rank, head_outputs):
    """Our LoRA (appendix E): per block q, k, v (C -> C each), c_proj (C -> C), c_fc (C -> 4C),
    mlp.c_proj (4C -> C), an adapter (in + out) x rank each: 18 C rank; plus the head's (C + out) x rank."""
    return layers * 18 * width * rank + (width + head_outputs) * rank


def cases(lora_rank=16, classes=2):
    """Trainable floats (= gradient floats all-reduced per step) of the book's settings."""
    head = 768 * classes + classes  # the classifier's Linear(768, classes) with bias
    small, medium = CONFIGS["gpt2-small"], CONFIGS["gpt2-medium"]
    return {
        "ch6-last": ("ch. 6, gpt2-small, last block + final LayerNorm + head (the default)",
                     block_floats(768) + 2 * 768 + head),
        "ch6-all": ("ch. 6, gpt2-small, all layers (wte, wpe, blocks, ln_f, head)",
                    model_floats(*small) + head),
        "ch6-lora": (f"ch. 6, gpt2-small, LoRA rank {lora_rank} (blocks + head)",
                     lora_floats(*small, lora_rank, classes)),
        "ch7-small-full": ("ch. 7, gpt2-small, full fine-tuning", model_floats(*small)),
        "ch7-medium-full": ("ch. 7, gpt2-medium, full fine-tuning", model_floats(*medium)),
        "ch7-small-lora": (f"ch. 7, gpt2-small, LoRA rank {lora_rank} (blocks + lm_head)",
                           lora_floats(*small, lora_rank, VOCAB)),
        "ch7-medium-lora": (f"ch. 7, gpt2-medium, LoRA rank {lora_rank} (blocks + lm_head)",
                            lora_floats(*medium, lora_rank, VOCAB)),
    }


def check_transformers():
    """num_parameters() of randomly initialised GPT2LMHeadModel (tied head counted once)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    ok = True
    for name, (layers, width) in CONFIGS.items():
        if name in ("gpt2-large", "gpt2-xl"):
            continue
        config = GPT2Config(n_layer=layers, n_embd=width, n_head=width // 64, n_positions=CONTEXT, vocab_size=VOCAB)
        with torch.device("meta"):
            model = GPT2LMHeadModel(config)
        theirs, ours = model.num_parameters(), model_floats(layers, width)
        block = sum(p.numel() for p in model.transformer.h[0].parameters())
        print(f"{name}: transformers {theirs:,} (block {block:,}), formula {ours:,} (block {block_floats(width):,})")
        ok &= theirs == ours and block == block_floats(width)
    return ok


def allreduce_seconds(n, nbytes, link_bytes_per_s, latency):
    return 2 * (n - 1) / n * nbytes / link_bytes_per_s + 2 * (n - 1) * latency


def print_allreduce(ranks, links, latency, efficiency, lora_rank):
    print(f"seconds per ring all-reduce, latency {latency * 1e6:g} us, efficiency {efficiency:g}\n")
    print("| case | MB | " + " | ".join(f"{g:g} Gbit/s, N={n}" for g in links for n in ranks) + " |")
    print("|---|---:|" + "---:|" * (len(links) * len(ranks)))
    for key, (_, floats) in cases(lora_rank).items():
        cells = [f"{allreduce_seconds(n, 4 * floats, g * 1e9 / 8 * efficiency, latency):.3f}" for g in links for n in ranks]
        print(f"| `{key}` | {4 * floats / 1e6:,.1f} | " + " | ".join(cells) + " |")


def print_table(floats, step, serial, batch, latency, efficiency, ranks, links):
    nbytes = 4 * floats
    print(f"all-reduce of {floats:,} floats ({nbytes / 1e6:,.1f} MB) per step; one process: {step:g} s/step "
          f"({serial:g} s of it not split), batch {batch}, latency {latency * 1e6:g} us, efficiency {efficiency:g}\n")
    print("| N | " + " | ".join(f"{g:g} Gbit/s: all-reduce s | step s | speed-up" for g in links) + " |")
    print("|---:|" + "---:|---:|---:|" * len(links))
    for n in ranks:
        cells = []
        for g in links:
            t_ar = allreduce_seconds(n, nbytes, g * 1e9 / 8 * efficiency, latency)
            t_step = (step - serial) * math.ceil(batch / n) / batch + serial + t_ar
            cells.append(f"{t_ar:.3f} | {t_step:.3f} | {step / t_step:.2f}x")
        print(f"| {n} | " + " | ".join(cells) + " |")
    if any(n > batch for n in ranks):
        print(f"\nN > batch ({batch}): some ranks have no rows; the busiest still has one.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    counts = sub.add_parser("counts", help="floats all-reduced per step for the book's settings")
    counts.add_argument("--lora-rank", type=int, default=16)
    counts.add_argument("--check-transformers", action="store_true",
                        help="compare the GPT-2 counts with transformers' num_parameters() (needs torch, transformers)")
    ring = sub.add_parser("allreduce", help="seconds per all-reduce for every case")
    ring.add_argument("--ranks", default="2,16")
    ring.add_argument("--links", default="1,10,25", help="link speeds in Gbit/s")
    ring.add_argument("--latency", type=float, default=50e-6)
    ring.add_argument("--efficiency", type=float, default=1.0)
    ring.add_argument("--lora-rank", type=int, default=16)
    table = sub.add_parser("table", help="all-reduce time, step time and speed-up for N machines")
    what = table.add_mutually_exclusive_group(required=True)
    what.add_argument("--case", choices=sorted(cases()), help="a case of `counts`")
    what.add_argument("--floats", type=int, help="gradient floats all-reduced per step")
    table.add_argument("--step", type=float, required=True, help="measured seconds per step of one process")
    table.add_argument("--serial", type=float, default=0.0, help="seconds of the step every rank repeats (AdamW)")
    table.add_argument("--batch", type=int, default=8, help="rows per global batch (the book: 8)")
    table.add_argument("--latency", type=float, default=50e-6, help="seconds per message (default 50e-6, TCP on Ethernet)")
    table.add_argument("--efficiency", type=float, default=1.0, help="fraction of the line rate achieved")
    table.add_argument("--ranks", default="2,4,8,16")
    table.add_argument("--links", default="1,10,25", help="link speeds in Gbit/s")
    table.add_argument("--lora-rank", type=int, default=16)
    args = parser.parse_args()
    if args.command == "counts":
        print("| case | floats | MB (float32) |\n|---|---:|---:|")
        for key, (label, floats) in cases(args.lora_rank).items():
            print(f"| `{key}`: {label} | {floats:,} | {4 * floats / 1e6:,.1f} |")
        if args.check_transformers and not check_transformers():
            print("MISMATCH between the formula and transformers", file=sys.stderr)
            return 1
        return 0
    if args.command == "allreduce":
        print_allreduce([int(n) for n in args.ranks.split(",")], [float(g) for g in args.links.split(",")],
                        args.latency, args.efficiency, args.lora_rank)
        return 0
    floats = args.floats if args.floats is not None else cases(args.lora_rank)[args.case][1]
    if not 0 <= args.serial <= args.step:
        parser.error("--serial must be between 0 and --step")
    print_table(floats, args.step, args.serial, args.batch, args.latency, args.efficiency,
                [int(n) for n in args.ranks.split(",")], [float(g) for g in args.links.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())

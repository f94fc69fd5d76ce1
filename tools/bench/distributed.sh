#!/usr/bin/env bash
# Data parallelism on one machine (issue 15): 2 processes x 1 thread (mpirun -np 2, each bound to
# one core) against 1 process x 2 threads, in the same run, with the machine's sgemm rate
# before and after:
#   1. chapter 6's default run (gpt2-small random weights, last block trainable, the SMS rows):
#      the frozen-layer pass over every row (split across the processes) and the training steps;
#   2. chapter 7 full fine-tuning (gpt2-small random weights, batch 8, the book's instruction rows):
#      median seconds per optimizer step.
#
#   swift build -c release --product prepare --product train
#   tools/bench/distributed.sh [ch6 steps=20] [ch7 steps=8]      DIST_WORK=DIR keeps the runs
set -euo pipefail
ch6_steps=${1:-20}
ch7_steps=${2:-8}
root=$(cd "$(dirname "$0")/../.." && pwd)
assets=${LLMFT_ASSETS:-$root/../shared/assets}
bin=$root/.build/release
work=${DIST_WORK:-$(mktemp -d)}
mkdir -p "$work"
mpi=(mpirun -np 2 --bind-to core -x LLMFT_THREADS=1)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
cc -O2 "$root/tools/bench/sgemm.c" -o "$work/sgemm" -lopenblas
"$work/sgemm" > "$work/sgemm-before.json"
unzip -o -q "$assets/sms-spam-collection.zip" SMSSpamCollection -d "$work"
"$bin/prepare" classification --input "$work/SMSSpamCollection" --format tsv --labels ham,spam --vocab "$assets/gpt2" --out "$work/sms" > /dev/null
"$bin/prepare" instruct --input "$assets/instruction-data.json" --vocab "$assets/gpt2" --out "$work/instruct" > /dev/null

for layout in one two; do
  if [ $layout = one ]; then run=(env LLMFT_THREADS=2); else run=("${mpi[@]}"); fi
  "${run[@]}" "$bin/train" --prepared "$work/sms" --out "$work/ch6-$layout" --model gpt2-small --weights random \
    --max-steps "$ch6_steps" --eval-freq 100000 --eval-iter 1 --epochs 1 --save-every 0 > "$work/ch6-$layout.log" 2>&1
  "${run[@]}" "$bin/train" instruct --prepared "$work/instruct" --out "$work/ch7-$layout" --model gpt2-small --weights random \
    --max-steps "$ch7_steps" --eval-freq 100000 --eval-iter 1 --batch-size 8 --save-every 0 > "$work/ch7-$layout.log" 2>&1
done
"$work/sgemm" > "$work/sgemm-after.json"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
m = lambda p: json.load(open(f"{work}/{p}/manifest.json"))["stats"]
sg = [json.load(open(f"{work}/sgemm-{w}.json"))["gflops"] for w in ("before", "after")]
print(f"sgemm {sg[0]:.1f} / {sg[1]:.1f} GFLOP/s (before / after)\n")
print("| run | 1 process x 2 threads | 2 processes x 1 thread | ratio (2x1 / 1x2) |")
print("|---|---:|---:|---:|")
a, b = m("ch6-one"), m("ch6-two")
print(f"| ch6 frozen-layer pass, s | {a['cache_seconds']:.1f} | {b['cache_seconds']:.1f} | {b['cache_seconds'] / a['cache_seconds']:.2f} |")
k = "median_seconds_per_step_this_process"
print(f"| ch6 training, median s per step ({a['steps']} steps) | {a[k]:.4f} | {b[k]:.4f} | {b[k] / a[k]:.2f} |")
a, b = m("ch7-one"), m("ch7-two")
k = "median_seconds_per_step_this_process"
print(f"| ch7 full fine-tuning, median s per step ({a['steps']} steps) | {a[k]:.2f} | {b[k]:.2f} | {b[k] / a[k]:.2f} |")
for p in ("ch6-one", "ch6-two", "ch7-one", "ch7-two"):
    l = [json.loads(x) for x in open(f"{work}/{p}/log.jsonl")]
    print(p, "last eval:", {k: l[-1].get(k) for k in ("train_loss", "val_loss", "grad_norm")})
PY

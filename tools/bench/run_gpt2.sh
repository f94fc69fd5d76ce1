#!/usr/bin/env bash
# GPT-2 core benchmark: our Swift/OpenBLAS implementation (bench-gpt2, release build) against the
# book's model in PyTorch (tools/bench/gpt2_torch.py, 2 threads), same machine, same run.
# Each case runs in its own process so the peak-memory column is per case.
#
#   tools/bench/run_gpt2.sh [--reps N] [--rounds R] [--with-355m] [--cases "forward train-ch6 ..."]
#
# Our machines are noisy, so each case runs R rounds of (torch, swift) processes, alternating, and
# the table takes the median over every repetition of every round. The `generate` case runs twice:
# 20 prompt + 30 new tokens (short, the hardest case for a cache to win), and the chapter-7 shape
# (44 prompt tokens, the mean Alpaca test prompt, + 256 new tokens, evaluate's max_new_tokens).
#
# Needs the venv with torch (PYTHON, default /work/venv/bin/python). Writes the raw JSON lines
# to .build/bench-gpt2.jsonl and prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/work/venv/bin/python}
REPS=5
ROUNDS=1
CASES="forward forward-cls train-ch6 train-ch7 generate"
WITH355=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    --with-355m) WITH355=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
swift build -c release --product bench-gpt2 >&2
BIN=$(swift build -c release --show-bin-path)/bench-gpt2
OUT=.build/bench-gpt2.jsonl
: > "$OUT"
run_case() {  # case model reps [extra args...]
  local c=$1 m=$2 r=$3
  shift 3
  for _ in $(seq "$ROUNDS"); do
    "$PYTHON" tools/bench/gpt2_torch.py --case "$c" --model "$m" --reps "$r" "$@" | tee -a "$OUT" >&2
    "$BIN" --case "$c" --model "$m" --reps "$r" "$@" | tee -a "$OUT" >&2
  done
}
for c in $CASES; do
  r=$REPS
  [ "$c" = train-ch7 ] && r=$(( REPS < 3 ? REPS : 3 ))
  if [ "$c" = generate ]; then
    run_case generate 124M "$r" --prompt-tokens 20 --new-tokens 30
    run_case generate 124M 2 --prompt-tokens 44 --new-tokens 256
  else
    run_case "$c" 124M "$r"
  fi
done
if [ "$WITH355" = 1 ]; then run_case train-ch7 355M 1; fi
"$PYTHON" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
import statistics
by = {}
for r in rows:
    key = (r["case"], r["model"]) if r["case"] != "generate" else ("generate", r["model"], r["prompt_tokens"], r["new_tokens"])
    d = by.setdefault(key, {}).setdefault(r["impl"], {"rows": []})
    d["rows"].append(r)
def pooled(d, field):
    return statistics.median([t for r in d["rows"] for t in r.get(field, [])])
for key, d in by.items():
    for impl, e in d.items():
        last = e["rows"][-1]
        e.update({k: v for k, v in last.items() if k not in ("times",)})
        if key[0] != "generate":
            e["median_s"] = pooled(e, "times")
            e["gflops"] = statistics.median([r["gflops"] * r["median_s"] for r in e["rows"] if "gflops" in r] or [0]) / e["median_s"] if impl == "swift" else None
            e["peak_rss_mib"] = max(r["peak_rss_mib"] for r in e["rows"])
        else:
            n = last["new_tokens"]
            if impl == "torch":
                e["uncached_b1_tok_s"] = n / pooled(e, "times_uncached")
            else:
                e["uncached_b1_tok_s"] = n / pooled(e, "times_uncached")
                e["cached_b1_tok_s"] = n / pooled(e, "times_cached_b1")
                e["cached_b8_tok_s"] = 8 * n / pooled(e, "times_cached_b8")
                e["cached_b32_tok_s"] = 32 * n / pooled(e, "times_cached_b32")
                e["cached_equals_uncached"] = all(r["cached_equals_uncached"] for r in e["rows"])
print(f"machine: {open('/proc/cpuinfo').read().count('processor')} cores; medians over every repetition of every round")
print(f"{'case':<12} {'model':<11} {'torch s':>9} {'swift s':>9} {'speedup':>8} {'swift GFLOP/s':>14} {'torch MiB':>10} {'swift MiB':>10}")
for key, d in by.items():
    if key[0] == "generate":
        continue
    case, model = key
    t, s = d.get("torch"), d.get("swift")
    if t and s:
        print(f"{case:<12} {model:<11} {t['median_s']:>9.3f} {s['median_s']:>9.3f} {t['median_s']/s['median_s']:>7.2f}x "
              f"{s['gflops']:>14.1f} {t['peak_rss_mib']:>10.0f} {s['peak_rss_mib']:>10.0f}")
for key, d in by.items():
    if key[0] != "generate":
        continue
    model = key[1]
    t, s = d.get("torch", {}), d.get("swift", {})
    tu = t.get("uncached_b1_tok_s", float("nan"))
    print(f"generate {model} ({s.get('prompt_tokens')} prompt + {s.get('new_tokens')} new tokens, greedy), tokens/s:")
    print(f"  torch book loop, uncached, batch 1: {tu:8.1f}")
    print(f"  swift uncached, batch 1:            {s.get('uncached_b1_tok_s', float('nan')):8.1f}")
    print(f"  swift KV cache, batch 1:            {s.get('cached_b1_tok_s', float('nan')):8.1f}  ({s.get('cached_b1_tok_s', 0)/tu:.1f}x torch uncached)")
    print(f"  swift KV cache, batch 8:            {s.get('cached_b8_tok_s', float('nan')):8.1f}  ({s.get('cached_b8_tok_s', 0)/tu:.1f}x torch uncached)")
    print(f"  swift KV cache, batch 32:           {s.get('cached_b32_tok_s', float('nan')):8.1f}  ({s.get('cached_b32_tok_s', 0)/tu:.1f}x torch uncached)")
    print(f"  cached == uncached tokens: {s.get('cached_equals_uncached')}")
PY

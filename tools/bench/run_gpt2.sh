#!/usr/bin/env bash
# GPT-2 core benchmark: our Swift/OpenBLAS implementation (bench-gpt2, release build) against the
# book's model in PyTorch (tools/bench/gpt2_torch.py, 2 threads), same machine, same run.
# Each case runs in its own process so the peak-memory column is per case.
#
#   tools/bench/run_gpt2.sh [--reps N] [--with-355m] [--cases "forward train-ch6 ..."]
#
# Needs the venv with torch (PYTHON, default /work/venv/bin/python). Writes the raw JSON lines
# to .build/bench-gpt2.jsonl and prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/work/venv/bin/python}
REPS=5
CASES="forward forward-cls train-ch6 train-ch7 generate"
WITH355=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    --with-355m) WITH355=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
swift build -c release --product bench-gpt2 >&2
BIN=$(swift build -c release --show-bin-path)/bench-gpt2
OUT=.build/bench-gpt2.jsonl
: > "$OUT"
run_case() {  # case model reps
  "$PYTHON" tools/bench/gpt2_torch.py --case "$1" --model "$2" --reps "$3" | tee -a "$OUT" >&2
  "$BIN" --case "$1" --model "$2" --reps "$3" | tee -a "$OUT" >&2
}
for c in $CASES; do
  r=$REPS
  [ "$c" = train-ch7 ] && r=$(( REPS < 3 ? REPS : 3 ))
  run_case "$c" 124M "$r"
done
if [ "$WITH355" = 1 ]; then run_case train-ch7 355M 1; fi
"$PYTHON" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["case"], r["model"]), {})[r["impl"]] = r
print(f"machine: {open('/proc/cpuinfo').read().count('processor')} cores, shared with other builds; medians")
print(f"{'case':<12} {'model':<11} {'torch s':>9} {'swift s':>9} {'speedup':>8} {'swift GFLOP/s':>14} {'torch MiB':>10} {'swift MiB':>10}")
for (case, model), d in by.items():
    t, s = d.get("torch"), d.get("swift")
    if case == "generate":
        continue
    if t and s:
        print(f"{case:<12} {model:<11} {t['median_s']:>9.3f} {s['median_s']:>9.3f} {t['median_s']/s['median_s']:>7.2f}x "
              f"{s['gflops']:>14.1f} {t['peak_rss_mib']:>10.0f} {s['peak_rss_mib']:>10.0f}")
for (case, model), d in by.items():
    if case != "generate":
        continue
    t, s = d.get("torch", {}), d.get("swift", {})
    tu = t.get("uncached_b1_tok_s", float("nan"))
    print(f"generate {model} ({s.get('prompt_tokens')} prompt + {s.get('new_tokens')} new tokens, greedy), tokens/s:")
    print(f"  torch book loop, uncached, batch 1: {tu:8.1f}")
    print(f"  swift uncached, batch 1:            {s.get('uncached_b1_tok_s', float('nan')):8.1f}")
    print(f"  swift KV cache, batch 1:            {s.get('cached_b1_tok_s', float('nan')):8.1f}  ({s.get('cached_b1_tok_s', 0)/tu:.1f}x torch uncached)")
    print(f"  swift KV cache, batch 8:            {s.get('cached_b8_tok_s', float('nan')):8.1f}  ({s.get('cached_b8_tok_s', 0)/tu:.1f}x torch uncached)")
    print(f"  cached == uncached tokens: {s.get('cached_equals_uncached')}")
PY

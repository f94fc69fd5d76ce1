#!/usr/bin/env bash
# Before/after benchmark of a change: the GPT-2 core cases of bench-gpt2 built from an earlier
# commit against the current checkout, alternating in the same run, with the machine's sgemm
# rate measured before and after (tools/bench/sgemm.c). Release builds of both sides:
#
#   git worktree add /tmp/before <commit> && (cd /tmp/before && swift build -c release --product bench-gpt2)
#   tools/bench/before_after.sh /tmp/before [--rounds 3] [--reps 3] [--cases "forward train-ch6-cached ..."]
#
# Each case runs R rounds of (before, after) processes; the table takes the median over every
# repetition of every round, and the largest peak RSS. Raw JSON lines: .build/before-after.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=${1:?usage: before_after.sh BEFORE_CHECKOUT [--rounds R] [--reps N] [--cases "..."]}
shift
ROUNDS=3
REPS=3
CASES="forward forward-cls train-ch6 train-ch6-cached train-ch7 generate"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
OLD="$BEFORE/.build/release/bench-gpt2"
[ -x "$OLD" ] || { echo "no $OLD: build it with (cd $BEFORE && swift build -c release --product bench-gpt2)" >&2; exit 1; }
swift build -c release --product bench-gpt2 >&2
NEW=$(swift build -c release --show-bin-path)/bench-gpt2
SGEMM=.build/sgemm
cc -O2 tools/bench/sgemm.c -o "$SGEMM" -lopenblas
OUT=.build/before-after.jsonl
: > "$OUT"
"$SGEMM" | sed 's/^{/{"side": "start", /' | tee -a "$OUT" >&2
for c in $CASES; do
  for _ in $(seq "$ROUNDS"); do
    "$OLD" --case "$c" --reps "$REPS" | sed 's/^{/{"side": "before", /' | tee -a "$OUT" >&2
    "$NEW" --case "$c" --reps "$REPS" | sed 's/^{/{"side": "after", /' | tee -a "$OUT" >&2
  done
done
"$SGEMM" | sed 's/^{/{"side": "end", /' | tee -a "$OUT" >&2
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sgemm = [r for r in rows if r["case"] == "sgemm"]
print("sgemm (OpenBLAS, 1024x768x3072): " + ", ".join(f"{r['side']} {r['gflops']:.1f} GFLOP/s" for r in sgemm))
cases = [c for c in dict.fromkeys(r["case"] for r in rows) if c != "sgemm"]
print(f"{'case':<18} {'before s':>9} {'after s':>9} {'after/before':>13} {'before MiB':>11} {'after MiB':>10}")
def times(r):
    return r.get("times") or r.get("times_cached_b8") or []
for c in cases:
    b = [r for r in rows if r["case"] == c and r["side"] == "before"]
    a = [r for r in rows if r["case"] == c and r["side"] == "after"]
    tb = statistics.median([t for r in b for t in times(r)])
    ta = statistics.median([t for r in a for t in times(r)])
    label = c if c != "generate" else "generate (b8)"
    print(f"{label:<18} {tb:>9.3f} {ta:>9.3f} {ta/tb:>12.2f}x {max(r['peak_rss_mib'] for r in b):>11.0f} {max(r['peak_rss_mib'] for r in a):>10.0f}")
PY

#!/usr/bin/env bash
# The Hugging Face fine-tuning guide's scale on our tools: an IMDb-shaped set (reviews of a few
# hundred tokens, one in ten over 512; tools/bench/make_imdb_shaped_csv.py) truncated at 512.
# Measures, in one run, beside the machine's sgemm rate (tools/bench/sgemm.c, before and after):
#   - prepare classification over all the rows: rows/s and tokens/s (median of 3 whole-process
#     runs, vocabulary loading included);
#   - train's frozen-layer pass over a seeded subset (prepare --limit; gpt2-small, random weights,
#     last_block trainable, so 11 frozen blocks over every row of all three splits): seconds and
#     GFLOP/s, counting the matrix
#     products as executed: per row and block 24*T*C^2 (QKV, projection, MLP) + 4*T^2*C (Q K^T and
#     P V over the full T x T scores), T = 512, C = 768.
#
#   swift build -c release --product prepare --product train
#   tools/bench/imdb_shaped.sh [rows=1000] [frozen-pass rows=200]
#
# Needs ../shared/assets (or $LLMFT_ASSETS) for the vocabulary and the word source. Run it from a
# worktree nobody is rebuilding. The frozen pass costs about 8 GFLOP per row (1,000 rows: 89 TFLOP).
set -euo pipefail
rows=${1:-1000}
frozen_subset=${2:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
assets=${LLMFT_ASSETS:-$root/../shared/assets}
bin=$root/.build/release
for t in prepare train; do [ -x "$bin/$t" ] || { echo "build first: swift build -c release --product $t" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 "$root/tools/bench/sgemm.c" -o "$work/sgemm" -lopenblas
sgemm_before=$("$work/sgemm")
python3 "$root/tools/bench/make_imdb_shaped_csv.py" --words "$assets/instruction-data.json" --rows "$rows" --out "$work/reviews.csv"

prepare() {  # prepare [extra flags...] into $work/prepared
  rm -rf "$work/prepared"
  "$bin/prepare" classification --input "$work/reviews.csv" --format csv --text-column text --label-column label \
    --balance none --max-length 512 --vocab "$assets/gpt2" --out "$work/prepared" "$@" >/dev/null
}
prepare_seconds() {
  local t0 t1
  t0=$(date +%s.%N); prepare; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
prep_seconds=$( (prepare_seconds; prepare_seconds; prepare_seconds) | sort -n | sed -n 2p)
read -r tokens truncated < <(python3 -c "
import json; s = json.load(open('$work/prepared/manifest.json'))['stats']; print(s['tokens'], s['truncated'])")

prepare --limit "$frozen_subset"
"$bin/train" --prepared "$work/prepared" --vocab "$assets/gpt2" --out "$work/train" --model gpt2-small \
  --weights random --trainable-layers last_block --epochs 1 --max-steps 1 --eval-iter 1 > "$work/train.log" 2>&1
frozen=$(grep -o 'frozen layers run once for [0-9]* rows in [0-9.]*s' "$work/train.log" | tail -1)
frozen_rows=$(echo "$frozen" | awk '{print $6}')
frozen_seconds=$(echo "$frozen" | awk '{print $9}' | tr -d s)
peak=$(grep -o 'peak memory.*' "$work/train.log" | tail -1)
sgemm_after=$("$work/sgemm")

python3 - "$rows" "$prep_seconds" "$tokens" "$truncated" "$frozen_rows" "$frozen_seconds" "$sgemm_before" "$sgemm_after" "$peak" <<'EOF'
import json, sys
rows, prep, tokens, truncated, frows, fsec = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
rate = lambda line: json.loads(line)["gflops"]
before, after, peak = rate(sys.argv[7]), rate(sys.argv[8]), sys.argv[9]
T, C, blocks = 512, 768, 11
flops = frows * blocks * (24 * T * C * C + 4 * T * T * C)
gflops = flops / fsec / 1e9
print(f"IMDb-shaped set: {rows} rows, {tokens} tokens ({tokens / rows:.0f} per row), {truncated} cut at 512")
print(f"prepare classification: {prep:.3f} s (median of 3) = {rows / prep:.0f} rows/s, {tokens / prep / 1e6:.2f} M tokens/s")
print(f"frozen pass (11 blocks x {frows} rows x 512 positions): {fsec:.1f} s, {flops / 1e12:.1f} TFLOP = {gflops:.1f} GFLOP/s")
print(f"machine sgemm (1024x768x3072): {before:.1f} GFLOP/s before, {after:.1f} after; frozen pass / sgemm = {gflops / ((before + after) / 2):.2f}")
print(f"train {peak}")
EOF

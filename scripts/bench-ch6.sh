#!/usr/bin/env bash
# Chapter 6 end to end, offline, random weights: prepare -> train -> evaluate with the book's
# settings (token_position last), then the same with token_position flexible. Prints the wall
# time of each stage and the accuracies. Release binaries: swift build -c release first.
#
#   scripts/bench-ch6.sh [WORKDIR]      (default /tmp/llmft-bench-ch6; needs ../shared/assets or $LLMFT_ASSETS)
#   POSITIONS="flexible" TRAIN_ARGS="--epochs 1" scripts/bench-ch6.sh    # a shorter run
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release"
assets="${LLMFT_ASSETS:-$root/../shared/assets}"
work="${1:-/tmp/llmft-bench-ch6}"
mkdir -p "$work/raw"
cd "$work"
[ -f raw/SMSSpamCollection.tsv ] || { unzip -o -q "$assets/sms-spam-collection.zip" SMSSpamCollection -d raw && mv raw/SMSSpamCollection raw/SMSSpamCollection.tsv; }
[ -d raw/gpt2 ] || cp -r "$assets/gpt2" raw/gpt2
now() { date +%s.%N; }
stage() { local name=$1; shift; local t0; t0=$(now); "$@" > "$work/$name.out" 2> "$work/$name.err"; echo "$name $(echo "$(now) - $t0" | bc) s"; }
for position in ${POSITIONS:-last flexible}; do
  echo "== token_position $position (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
  t0=$(now)
  stage prepare "$bin/prepare" classification --input raw/SMSSpamCollection.tsv --vocab raw/gpt2 --out prepared
  stage train-$position "$bin/train" --prepared prepared --out train-$position --weights random --token-position $position ${TRAIN_ARGS:-}
  stage evaluate-$position "$bin/evaluate" --model train-$position --prepared prepared --out eval-$position
  echo "total $(echo "$(now) - $t0" | bc) s"
  cat "$work/evaluate-$position.out"
  grep -E "cache|frozen" "$work/train-$position.err" || true
done

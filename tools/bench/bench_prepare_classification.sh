#!/usr/bin/env bash
# Times `prepare classification` (release build) against the book's pandas + tiktoken code on the
# same inputs, each as a whole process (start-up and vocabulary loading included), and prints the
# median of N runs and the ratio.
#
#   swift build -c release --product prepare
#   tools/bench/bench_prepare_classification.sh [runs=7]
#
# Needs ../shared/assets (or $LLMFT_ASSETS) and the Python venv at /work/venv (or $PYTHON).
set -euo pipefail
runs=${1:-7}
root=$(cd "$(dirname "$0")/../.." && pwd)
assets=${LLMFT_ASSETS:-$root/../shared/assets}
python=${PYTHON:-/work/venv/bin/python}
prepare=$root/.build/release/prepare
[ -x "$prepare" ] || { echo "build first: swift build -c release --product prepare" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unzip -q -o "$assets/sms-spam-collection.zip" SMSSpamCollection -d "$work"
tsv=$work/SMSSpamCollection

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_it() {  # prints seconds for one run of "$@"
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
ours=(); peer=()
for i in $(seq "$runs"); do
  ours+=("$(time_it "$prepare" classification --input "$tsv" --vocab "$assets/gpt2" --out "$work/ours")")
  peer+=("$(time_it "$python" "$root/tools/bench/prepare_classification_peer.py" "$tsv" "$assets/gpt2" "$work/peer")")
done
# Same CSV bytes from both, as a sanity check that the runs did the same work.
for s in train validation test; do cmp -s "$work/ours/$s.csv" "$work/peer/$s.csv" || { echo "$s.csv differs" >&2; exit 1; }; done
m_ours=$(printf '%s\n' "${ours[@]}" | median)
m_peer=$(printf '%s\n' "${peer[@]}" | median)
printf 'prepare classification (release): median %.3f s over %d runs\n' "$m_ours" "$runs"
printf 'pandas + tiktoken (book code):     median %.3f s over %d runs\n' "$m_peer" "$runs"
printf 'ratio peer / ours: %.2f\n' "$(echo "$m_peer / $m_ours" | bc -l)"

#!/usr/bin/env bash
# Measures what the hash cache saves: `pipeline status` on a stage with one big dep, with the
# cache warm, with it deleted before every call (cold: the dep is read and hashed), and
# `sha256sum` of the same file as the peer (the cost of reading and hashing it at all).
#
#   swift build -c release --product pipeline
#   tools/bench/pipeline-hashcache.sh [.build/release/pipeline] [size in MiB, default 256] [repeats, default 5]
set -euo pipefail
PIPELINE=$(realpath "${1:-.build/release/pipeline}")
MIB=${2:-256}
REPEATS=${3:-5}
DIR=$(mktemp -d /tmp/pipeline-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"
head -c $((MIB * 1024 * 1024)) /dev/urandom > big.bin
cat > pipeline.yaml <<'YAML'
stages:
  size:
    cmd: wc -c < big.bin > size.txt
    deps: [big.bin]
    outs: [size.txt]
YAML
sleep 3   # older than the cache's 2 s racy window, so the first hash is trusted
"$PIPELINE" run > /dev/null
sleep 3
"$PIPELINE" status > /dev/null   # re-hashes size.txt once (written < 2 s before it was hashed)

ms() { local s e; s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

warm=$(for _ in $(seq "$REPEATS"); do ms "$PIPELINE" status; done | median)
cold=$(for _ in $(seq "$REPEATS"); do rm -rf .pipeline-cache; ms "$PIPELINE" status; done | median)
peer=$(for _ in $(seq "$REPEATS"); do ms sha256sum big.bin; done | median)
echo "dep: ${MIB} MiB, ${REPEATS} repeats, medians"
echo "pipeline status, warm hash cache: ${warm} ms"
echo "pipeline status, no hash cache:   ${cold} ms"
echo "sha256sum of the dep (peer):      ${peer} ms"
awk -v w="$warm" -v c="$cold" -v p="$peer" 'BEGIN { printf "cold / warm: %.1fx; cold / sha256sum: %.2fx\n", c / (w ? w : 1), c / (p ? p : 1) }'

#!/usr/bin/env bash
# Tokenizer benchmark: GPT2BPETokenizer (Swift, release build) against tiktoken 'gpt2' on the same
# corpus in the same run. Corpus: every SMS text and every Alpaca-formatted instruction entry,
# repeated to about 1.4 MB. Reports median tokens/s of single-thread and batch encoding, and the
# ratio. Both sides must produce the same token count and checksum, or the script fails.
#
#   tools/bench/tokenizer.sh [RUNS]          (default 5 runs; needs ../shared/assets and /work/venv)
#
# Environment: LLMFT_ASSETS (default ../shared/assets), PYTHON (default /work/venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-5}"
ASSETS="${LLMFT_ASSETS:-../shared/assets}"
PYTHON="${PYTHON:-/work/venv/bin/python}"
THREADS="$(nproc)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

swift build -c release --product bench-tokenizer >&2
"$PYTHON" tools/bench/tokenizer_bench.py corpus --assets "$ASSETS" --out "$WORK/corpus.jsonl"
.build/release/bench-tokenizer --vocab "$ASSETS/gpt2" --corpus "$WORK/corpus.jsonl" --runs "$RUNS" \
    --threads "$THREADS" > "$WORK/swift.json"
"$PYTHON" tools/bench/tokenizer_bench.py tiktoken --vocab "$ASSETS/gpt2" --corpus "$WORK/corpus.jsonl" \
    --runs "$RUNS" --threads "$THREADS" > "$WORK/tiktoken.json"

"$PYTHON" - "$WORK/swift.json" "$WORK/tiktoken.json" <<'PY'
import json, platform, statistics, sys, os
swift, tik = (json.load(open(path)) for path in sys.argv[1:3])
if (swift["tokens"], swift["checksum"]) != (tik["tokens"], tik["checksum"]):
    sys.exit(f"token mismatch: swift {swift['tokens']}/{swift['checksum']} tiktoken {tik['tokens']}/{tik['checksum']}")
tokens, mb = swift["tokens"], swift["bytes"] / 1e6
def rate(seconds): return tokens / statistics.median(seconds)
rows = [
    ("single thread, cold cache", rate(swift["single_seconds"]), rate(tik["single_seconds"])),
    (f"batch, {swift['threads']} threads, cold cache", rate(swift["batch_seconds"]), rate(tik["batch_seconds"])),
]
print(f"corpus: {swift['documents']} documents, {mb:.2f} MB, {tokens} tokens (identical ids: checksum {tik['checksum']})")
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
      f"{swift['runs']} runs, medians; tiktoken {tik['tiktoken']}")
print(f"{'measurement':34} {'Swift tok/s':>12} {'tiktoken tok/s':>15} {'ratio':>7}")
for name, ours, theirs in rows:
    print(f"{name:34} {ours:12,.0f} {theirs:15,.0f} {ours / theirs:6.2f}x")
print(f"{'Swift single thread, warm cache':34} {rate(swift['warm_seconds']):12,.0f}")
print(f"Swift vocabulary load: median {statistics.median(swift['load_seconds']) * 1000:.0f} ms")
PY

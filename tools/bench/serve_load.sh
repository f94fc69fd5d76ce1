#!/usr/bin/env bash
# `serve` under load (docs/benchmarks.md "serve"): a warm POST /v1/classify of one SMS at 1, 4
# and 16 concurrent clients (wrk, 10 s each: p50/p99 latency, requests/s), then generation
# tokens/s at 1 and 8 concurrent chats against `evaluate instruct`'s own batched generation on the
# same model in the same run, with the machine's sgemm rate before and after.
# Models: gpt2-small, random weights, book default settings, trained for one step (the weights do
# not change the cost). Run from the repository root after `swift build -c release`; needs wrk
# (apt-get install wrk) and the offline assets (LLMFT_MIRROR, default ../shared/assets).
# Writes under ${OUT:-data/bench-serve}; bounded: about 15 minutes on 2 cores (the first run also
# trains the three models for one step, several minutes more).
set -euo pipefail
OUT=${OUT:-data/bench-serve}
MIRROR=${LLMFT_MIRROR:-$PWD/../shared/assets}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
TOKENS=${TOKENS:-64}
BIN=.build/release
mkdir -p "$OUT"
cc -O2 tools/bench/sgemm.c -o "$OUT/sgemm" -lopenblas
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sgemm before: $("$OUT/sgemm")"

# The models (skipped when already there).
[ -f "$OUT/raw/manifest.json" ] || LLMFT_MIRROR="$MIRROR" $BIN/fetch --config pipeline.yaml --out "$OUT/raw" >/dev/null
[ -f "$OUT/prepared/manifest.json" ] || $BIN/prepare classification --input "$OUT/raw/SMSSpamCollection.tsv" --vocab "$OUT/raw/gpt2" --out "$OUT/prepared" >/dev/null
[ -f "$OUT/classifier/manifest.json" ] || $BIN/train --prepared "$OUT/prepared" --out "$OUT/classifier" --model gpt2-small --weights random --max-steps 1 >/dev/null 2>&1
[ -f "$OUT/classifier-flexible/manifest.json" ] || $BIN/train --prepared "$OUT/prepared" --out "$OUT/classifier-flexible" --model gpt2-small --weights random \
    --token-position flexible --max-steps 1 >/dev/null 2>&1
[ -f "$OUT/instruct-prepared/manifest.json" ] || $BIN/prepare instruct --input "$MIRROR/instruction-data.json" --vocab "$OUT/raw/gpt2" --out "$OUT/instruct-prepared" >/dev/null
[ -f "$OUT/instruct/manifest.json" ] || $BIN/train instruct --prepared "$OUT/instruct-prepared" --out "$OUT/instruct" --model gpt2-small --weights random \
    --max-steps 1 --eval-freq 1000 --eval-iter 1 >/dev/null 2>&1

# Starts serve on a free port; sets PORT and PID.
start_serve() {
    $BIN/serve --port 0 --vocab "$OUT/raw/gpt2" "$@" > "$OUT/serve.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$OUT/serve.log" | head -1)
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    echo "serve did not start: $(cat "$OUT/serve.log")" >&2; exit 1
}

# Classify: one SMS per request (26 tokens), with the book's `last` token position (the row padded
# to the training length, 120 tokens, all of which the last position depends on) and with
# `flexible` (the last real token: the row is cut to the text).
cat > "$OUT/classify.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"texts": ["You are a winner you have been specially selected to receive $1000 cash or a $2000 award."]}'
LUA
for model in ${CLASSIFIERS-classifier classifier-flexible}; do
    start_serve --model "$OUT/$model"
    wrk -t 1 -c 1 -d 3s -s "$OUT/classify.lua" "http://127.0.0.1:$PORT/v1/classify" >/dev/null   # warm-up
    for c in 1 4 16; do
        t=$(( c < 2 ? c : 2 ))
        wrk -t $t -c $c -d ${SECONDS_PER_RUN}s --timeout 60s --latency -s "$OUT/classify.lua" "http://127.0.0.1:$PORT/v1/classify" > "$OUT/wrk-$model-$c.txt"
        p50=$(awk '$1 == "50%" {print $2}' "$OUT/wrk-$model-$c.txt"); p99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk-$model-$c.txt")
        rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$model-$c.txt"); n=$(awk '/requests in/ {print $1}' "$OUT/wrk-$model-$c.txt")
        errors=$(grep -E "Non-2xx|Socket errors" "$OUT/wrk-$model-$c.txt" | tr -s ' ' || true)
        echo "classify one SMS ($model), $c concurrent: p50 $p50, p99 $p99, $n requests, $rps requests/s ${errors:+($errors)}"
    done
    curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^serve_batch(es|_rows)_total" | tr '\n' ' '; echo
    kill -INT $PID; wait $PID || true
done

# Generation: chats of TOKENS greedy tokens each, 1, 8 and 32 at once (32 rows of 256 positions),
# alternating with `evaluate instruct`'s batched generation on the same model (8 prompts in one
# batch, and its default of 32), ROUNDS times: the machine's speed drifts within minutes.
for round in $(seq 1 "${ROUNDS:-2}"); do
    start_serve --model "$OUT/instruct" --max-batch 32 --context 256
    python3 - "$PORT" "$TOKENS" "$round" <<'PY'
import json, sys, threading, time, urllib.request
port, tokens, round_ = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def chat(i, out):
    body = json.dumps({"messages": [{"role": "user", "content": f"Rewrite the sentence {i} in passive voice."}], "max_tokens": tokens}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, {"Content-Type": "application/json"})
    out[i] = json.load(urllib.request.urlopen(req, timeout=600))["usage"]["completion_tokens"]
chat(99, {})   # warm-up
for n in (1, 8, 32):
    out = {}
    start = time.time()
    threads = [threading.Thread(target=chat, args=(i, out)) for i in range(n)]
    [t.start() for t in threads]; [t.join() for t in threads]
    seconds = time.time() - start
    print(f"round {round_}: serve chat, {n} concurrent: {sum(out.values())} tokens in {seconds:.2f}s = {sum(out.values()) / seconds:.1f} tokens/s")
PY
    kill -INT $PID; wait $PID || true
    for batch in 8 32; do
        $BIN/evaluate instruct --model "$OUT/instruct" --prepared "$OUT/instruct-prepared" --vocab "$OUT/raw/gpt2" --out "$OUT/eval-$batch" \
            --limit $batch --generation-batch $batch --max-new-tokens "$TOKENS" >/dev/null 2>&1
        python3 -c "import json; g = json.load(open('$OUT/eval-$batch/metrics.json'))['generation']; print('round $round: evaluate instruct, batch %d: %d tokens in %.2fs = %.1f tokens/s' % ($batch, g['new_tokens'], g['seconds'], g['tokens_per_second']))"
    done
done
echo "sgemm after: $("$OUT/sgemm")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/bin/sh
# Chapter 7 benchmark: one `train instruct` step of gpt2-small (random weights) on batches of
# exactly 8 x 90 tokens, its PyTorch peer, and (optionally) the time to generate all 110 test
# responses. Run from the repository root after `swift build -c release` and `prepare instruct`
# (data/instruct). Writes under data/bench-*.
set -e
python3 tools/bench/make_fixed_instruct_rows.py data/bench-instruct 64 90
.build/release/train instruct --prepared data/bench-instruct --out data/bench-instruct-train --model gpt2-small \
    --weights random --max-steps ${STEPS:-6} --eval-freq 1000 --eval-iter 1 --save-every 0
python3 -c "import json; s = json.load(open('data/bench-instruct-train/manifest.json'))['stats']; print('swift train instruct gpt2-small 8x90 step: median %.3fs, mean %.3fs over %d steps' % (s['median_seconds_per_step_this_process'], s['seconds_per_step_this_process'], s['steps']))"
/work/venv/bin/python tools/reference/bench_instruct_step.py ${STEPS:-5}
if [ -n "$GENERATE" ]; then
    .build/release/evaluate instruct --model data/instruct-train --prepared data/instruct --vocab data/instruct-raw/gpt2 --out data/bench-instruct-eval
    python3 -c "import json; g = json.load(open('data/bench-instruct-eval/metrics.json'))['generation']; print('generate %d responses: %d tokens in %.1fs (%.1f tokens/s)' % (g['responses'], g['new_tokens'], g['seconds'], g['tokens_per_second']))"
fi

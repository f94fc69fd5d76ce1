#!/usr/bin/env bash
# QLoRA on CPU (issue 14), each quantized base beside float32 in the same run:
#   1. chapter-7 LoRA fine-tuning (the book's Alpaca rows, batch 8, random weights) of each model
#      with its base float32, int8 and nf4: peak RSS and median step time. Each quantized run
#      first writes <out>/quantized-base.bin (a 1-step run); the measured run reads it back, so
#      the float32 Linear weights are never loaded (that is what later runs of a pipeline do).
#   2. quality on gpt2-small: the LoRA loss curve over the same steps with each base, and the
#      validation perplexity of the untrained model with each base (one step at lr 1e-30: the
#      adapters keep their zero start, so the checkpoint is the base, dequantized).
#   3. batch-1 decoding tok/s (bench-gpt2 --case generate-quantized).
#   4. (PARTS=classifier, not in the default) chapter-6 classifier LoRA (the SMS spam data, batch
#      8, random weights) of CLASSIFIER_MODELS (default "gpt2-small gpt2-medium") with each base,
#      CLASSIFIER_STEPS steps (default 3): peak RSS and median step time, as part 1.
# The machine's sgemm rate is measured before and after.
#
#   swift build -c release --product prepare --product train --product evaluate --product bench-gpt2
#   tools/bench/qlora.sh ["gpt2-medium gpt2-xl"] [steps=3] [quality steps=30] [gradient checkpointing=false]
#   PARTS="memory quality decode" (default: these three; add classifier) picks the parts; QLORA_WORK=DIR keeps the runs.
set -euo pipefail
models=${1:-"gpt2-medium gpt2-xl"}
steps=${2:-3}
quality_steps=${3:-30}
checkpointing=${4:-false}
parts=${PARTS:-"memory quality decode"}
classifier_models=${CLASSIFIER_MODELS:-"gpt2-small gpt2-medium"}
classifier_steps=${CLASSIFIER_STEPS:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
assets=${LLMFT_ASSETS:-$root/../shared/assets}
bin=$root/.build/release
work=${QLORA_WORK:-$(mktemp -d)}
mkdir -p "$work"
cc -O2 "$root/tools/bench/sgemm.c" -o "$work/sgemm" -lopenblas
"$work/sgemm" > "$work/sgemm-before.json"
"$bin/prepare" instruct --input "$assets/instruction-data.json" --vocab "$assets/gpt2" --out "$work/prepared" > /dev/null

train() {  # train OUT MODEL QUANT STEPS [extra flags...]
  local out=$1 model=$2 q=$3 n=$4; shift 4
  "$bin/train" instruct --prepared "$work/prepared" --out "$out" --model "$model" --weights random --lora true \
    --quantize-base "$q" --max-steps "$n" --batch-size 8 --save-every 0 --gradient-checkpointing "$checkpointing" "$@" > "$out.log" 2>&1
}

has() { case " $parts " in *" $1 "*) return 0;; *) return 1;; esac; }

if has memory; then for model in $models; do
  for q in none int8 nf4; do
    out=$work/$model-$q
    rm -rf "$out"
    if [ "$q" != none ]; then train "$out" "$model" "$q" 1 --eval-freq 100000 --eval-iter 1; fi
    train "$out" "$model" "$q" "$steps" --eval-freq 100000 --eval-iter 1
    echo "$model $q: $(grep -o 'peak memory.*' "$out.log" | tail -1)"
  done
done; fi

if has quality; then for q in none int8 nf4; do
  out=$work/quality-$q
  rm -rf "$out" "$out-untrained"
  train "$out" gpt2-small "$q" "$quality_steps" --eval-freq 5 --eval-iter 5
  train "$out-untrained" gpt2-small "$q" 1 --lr 1e-30 --eval-freq 100000 --eval-iter 1
  "$bin/evaluate" instruct --model "$out-untrained" --prepared "$work/prepared" --vocab "$assets/gpt2" \
    --out "$out-untrained-eval" --limit 1 --max-new-tokens 1 > "$out-untrained-eval.log" 2>&1
done; fi

train_classifier() {  # train_classifier OUT MODEL QUANT STEPS
  "$bin/train" --prepared "$work/prepared-sms" --out "$1" --model "$2" --weights random --trainable-layers lora \
    --quantize-base "$3" --max-steps "$4" --batch-size 8 --save-every 0 --eval-freq 100000 --eval-iter 1 > "$1.log" 2>&1
}

if has classifier; then
  unzip -q -o "$assets/sms-spam-collection.zip" SMSSpamCollection -d "$work"
  "$bin/prepare" classification --input "$work/SMSSpamCollection" --vocab "$assets/gpt2" --out "$work/prepared-sms" > /dev/null
  for model in $classifier_models; do for q in none int8 nf4; do
    out=$work/cls-$model-$q
    rm -rf "$out"
    if [ "$q" != none ]; then train_classifier "$out" "$model" "$q" 1; fi
    train_classifier "$out" "$model" "$q" "$classifier_steps"
    echo "classifier $model $q: $(grep -o 'peak memory.*' "$out.log" | tail -1)"
    # Only the manifests are read; gpt2-medium's checkpoint and state take 2.8 GB per run.
    rm -f "$out/model.safetensors" "$out/state" "$out/quantized-base.bin"
  done; done
fi

decode=""
if has decode; then for m in 124M 355M; do decode="$decode $("$bin/bench-gpt2" --case generate-quantized --model $m --reps 3)"; done; fi
"$work/sgemm" > "$work/sgemm-after.json"

python3 - "$work" "$models" "$parts" "$checkpointing" "$classifier_models" <<'PY'
import json, sys
work, models, parts, checkpointing = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
classifier_models = sys.argv[5].split()
sg = [json.load(open(f"{work}/sgemm-{w}.json"))["gflops"] for w in ("before", "after")]
print(f"sgemm {sg[0]:.1f} / {sg[1]:.1f} GFLOP/s (before / after)\n")
label = lambda q: "float32" if q == "none" else q

def memory(prefix="", runs=models):
    print("| model | base | quantized base | peak RSS | RSS vs float32 | median s/step | step vs float32 |")
    print("|---|---|---|---|---|---|---|")
    for m in runs:
        rows = {q: json.load(open(f"{work}/{prefix}{m}-{q}/manifest.json"))["stats"] for q in ("none", "int8", "nf4")}
        f = rows["none"]
        for q, s in rows.items():
            qb = s.get("quantized_base_bytes")
            print(f"| {m} | {label(q)} | {f'{qb / 2**20:.0f} MiB' if qb else '-'} | {s['peak_rss_bytes'] / 2**30:.2f} GiB |"
                  f" {s['peak_rss_bytes'] / f['peak_rss_bytes']:.2f} | {s['median_seconds_per_step_this_process']:.2f} |"
                  f" {s['median_seconds_per_step_this_process'] / f['median_seconds_per_step_this_process']:.2f} |")

def quality():
    print("\ngpt2-small LoRA, validation loss at each evaluation (eval_iter 5):")
    curves = {}
    for q in ("none", "int8", "nf4"):
        log = [json.loads(l) for l in open(f"{work}/quality-{q}/log.jsonl")]
        curves[q] = [(r["step"], r["val_loss"]) for r in log if r.get("kind") == "eval"]
    print("| step | float32 | int8 | nf4 |\n|---|---|---|---|")
    for i, (step, v) in enumerate(curves["none"]):
        print(f"| {step} | {v:.4f} | {curves['int8'][i][1]:.4f} | {curves['nf4'][i][1]:.4f} |")
    last = {q: c[-1][1] for q, c in curves.items()}
    print(f"\nlast validation loss: int8 {100 * (last['int8'] / last['none'] - 1):+.2f}%, nf4 {100 * (last['nf4'] / last['none'] - 1):+.2f}% vs float32")
    print("\nuntrained model (adapters at their zero start), full validation set:")
    for q in ("none", "int8", "nf4"):
        v = json.load(open(f"{work}/quality-{q}-untrained-eval/metrics.json"))["validation"]
        print(f"  {label(q)}: loss {v['loss']:.5f}, perplexity {v['perplexity']:.2f}")

if "memory" in parts:
    print(f"gradient checkpointing: {checkpointing}")
    memory()
if "classifier" in parts:
    print("\nchapter-6 classifier, LoRA:")
    memory("cls-", classifier_models)
if "quality" in parts: quality()
if "decode" in parts: print("\nbatch-1 decoding:")
PY
echo "$decode" | tr ' ' '\n' | { grep -v '^$' || true; } | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(f\"  {r['model']}: float32 {r['float32_tok_s']:.1f} tok/s, int8 {r['int8_tok_s']:.1f} ({r['int8_speedup']:.2f}x), nf4 {r['nf4_tok_s']:.1f} ({r['nf4_speedup']:.2f}x); same greedy tokens as float32 of {r['new_tokens']}: int8 {r['int8_same_tokens_as_float32']}, nf4 {r['nf4_same_tokens_as_float32']}\")"
echo "(work folder: $work)"

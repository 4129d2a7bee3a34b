#!/usr/bin/env bash
# Probe (docs/results.md, "Continuing the shipped student"): does a short continuation of the shipped KARD
# student with the direct-answer task mixed in (question -> letter, the fine-tuning examples; "multi-task",
# as in distilling step-by-step) lift its OpenBookQA dev answers, against a continuation on KARD examples
# alone with the same steps, learning rate and seed?
#   ctl: 768 OpenBookQA KARD training examples; mt: 384 of those + 384 fine-tuning examples of other questions.
# 48 optimizer steps x 16 (one pass), lr 5e-4, LoRA r16 on top of demo/student, bf16 autocast; then both
# answer OpenBookQA dev (the settings of benchmarks/evaluate_default_student.sh), mt also by the direct
# prompt, ctl also StrategyQA held-out, and ctl again with seed 1. Resumable: finished steps are skipped.
#   RUN=runs/default-student OUT=runs/mt-probe bash benchmarks/continuation_probe.sh   (~1 h on 2 CPU cores)
#   CTL_SEEDS="1 2" adds more seeds of ctl (each ~12 min: training and OpenBookQA dev)
# Settings (environment variables; no arguments but -h/--help): DATA=../shared/data, RUN=runs/default-student
# (the folder of benchmarks/train_default_student.sh), OUT=runs/mt-probe, CTL_SEEDS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/continuation_probe.sh "$@"
source benchmarks/student_eval_sets.sh  # also DATA and RUN, with their defaults
require_data "$DATA" openbookqa/dev_complete.jsonl strategyqa/train.json
require_run "$RUN" obqa_kard.jsonl obqa_finetune.jsonl kb_obqa kb_strategyqa
P=${OUT:-runs/mt-probe}
mkdir -p "$P"
[ -e "$P/mt.jsonl" ] || python - "$RUN" "$P" <<'PY'
import os, random, sys
run, out = sys.argv[1:]
kard = open(f"{run}/obqa_kard.jsonl", encoding="utf-8").readlines()
finetune = open(f"{run}/obqa_finetune.jsonl", encoding="utf-8").readlines()
rng = random.Random(0)
order = list(range(len(kard)))
rng.shuffle(order)
mixes = {"mt": [kard[i] for i in order[:384]] + [finetune[i] for i in order[384:768]],
         "ctl": [kard[i] for i in order[:768]]}
for name in ("mt", "ctl"):
    rng.shuffle(mixes[name])
for name in ("ctl", "mt"):  # mt.jsonl last, whole files only: it marks the step done
    open(f"{out}/{name}.jsonl.partial", "w", encoding="utf-8").writelines(mixes[name])
    os.replace(f"{out}/{name}.jsonl.partial", f"{out}/{name}.jsonl")
PY
train() {  # arm examples seed
  [ -e "$P/$1/adapter_config.json" ] || nice python -m kard train-student --student demo/student --examples "$P/$2.jsonl" \
    --out "$P/$1" --steps 48 --batch-size 8 --grad-accum 2 --lr 5e-4 --lora --keep-adapter --bf16 \
    --max-length-cap 512 --save-steps 8 --seed "$3" --resume --no-progress
}
answer() {  # student set out [condition]
  local questions knowledge
  IFS='|' read -r questions knowledge <<< "$(eval_set "$2")"
  if [ "${4:-kard-bm25}" = finetune ]; then knowledge="--max-new-tokens 16"; fi
  nice python -m kard evaluate --no-progress --batch-size 16 $questions $knowledge --student "$1" \
    --condition "${4:-kard-bm25}" --out "$3"
}
answer demo/student obqa "$P/eval/shipped"
train ctl ctl 0 && answer "$P/ctl" obqa "$P/eval/ctl"
train mt mt 0 && answer "$P/mt" obqa "$P/eval/mt" && answer "$P/mt" obqa "$P/eval/mt-direct" finetune
answer "$P/ctl" strategyqa "$P/eval/ctl-sqa"
read -r -a seeds <<< "${CTL_SEEDS:-1}"
for seed in "${seeds[@]}"; do
  train "ctl-s$seed" ctl "$seed" && answer "$P/ctl-s$seed" obqa "$P/eval/ctl-s$seed"
done
for arm in ctl mt mt-direct "${seeds[@]/#/ctl-s}"; do
  python benchmarks/compare_runs.py "$P/eval/shipped" "$P/eval/$arm" --name "$arm vs shipped" || true
done

#!/usr/bin/env bash
# Probe (docs/results.md, "Weighting the conclusion"): a KARD target is mostly a passage copied, and the
# few tokens that pick the option ("So the answer is <option text>.\nAnswer: X") carry a small share of the
# plain token-mean loss. Does counting them more (`train-student --answer-weight W`) lift the KARD student's
# OpenBookQA dev answers? Continues the shipped adapter as continuation_probe.sh's `ctl` arm does (768
# OpenBookQA KARD training examples, 48 optimizer steps x 16, lr 5e-4, LoRA r16 on top of demo/student),
# float32, once with weight 1 ("plain") and once with weight W (default 5), same data order, learning rate
# and seed; then both answer OpenBookQA dev with the settings of evaluate_default_student.sh and are compared.
# Resumable: finished steps are skipped.
#   RUN=runs/default-student OUT=runs/aw-probe SEEDS="0 1" WEIGHT=5 bash benchmarks/answer_weight_probe.sh
#   (~25 min an arm on 2 CPU cores; SHIPPED=1 also scores demo/student for the comparison with it)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/student_eval_sets.sh  # also DATA and RUN, with their defaults
P=${OUT:-runs/aw-probe}
W=${WEIGHT:-5}
mkdir -p "$P"
[ -e "$P/examples.jsonl" ] || python - "$RUN" "$P" <<'PY'
import random, sys
run, out = sys.argv[1:]
kard = open(f"{run}/obqa_kard.jsonl", encoding="utf-8").readlines()
rng = random.Random(0)  # the same 768 examples, in the same order, as continuation_probe.sh's ctl arm
order = list(range(len(kard)))
rng.shuffle(order)
chosen = [kard[i] for i in order[:768]]
rng.shuffle(chosen)
open(f"{out}/examples.jsonl", "w", encoding="utf-8").writelines(chosen)
PY
train() {  # arm weight seed
  [ -e "$P/$1/adapter_config.json" ] || nice python -m kard train-student --student demo/student --examples "$P/examples.jsonl" \
    --out "$P/$1" --steps 48 --batch-size 8 --grad-accum 2 --lr 5e-4 --lora --keep-adapter --answer-weight "$2" \
    --max-length-cap 512 --save-steps 8 --seed "$3" --resume --no-progress
}
answer() {  # student out
  local questions knowledge
  IFS='|' read -r questions knowledge <<< "$(eval_set obqa)"
  nice python -m kard evaluate --no-progress --batch-size 16 $questions $knowledge --student "$1" \
    --condition kard-bm25 --out "$2"
}
read -r -a seeds <<< "${SEEDS:-0}"
for seed in "${seeds[@]}"; do
  train "plain-s$seed" 1 "$seed" && answer "$P/plain-s$seed" "$P/eval/plain-s$seed"
  train "aw$W-s$seed" "$W" "$seed" && answer "$P/aw$W-s$seed" "$P/eval/aw$W-s$seed"
  python benchmarks/compare_runs.py "$P/eval/plain-s$seed" "$P/eval/aw$W-s$seed" --name "weight $W vs 1, seed $seed" || true
done
if [ "${SHIPPED:-0}" = 1 ]; then
  answer demo/student "$P/eval/shipped"
  for seed in "${seeds[@]}"; do
    for arm in "plain-s$seed" "aw$W-s$seed"; do
      python benchmarks/compare_runs.py "$P/eval/shipped" "$P/eval/$arm" --name "$arm vs shipped" || true
    done
  done
fi

#!/usr/bin/env bash
# On a GPU, in minutes: train a student on each example set in VARIANTS (the KARD examples and the
# same-budget fine-tuning baseline by default; $RUN/all_<variant>.jsonl) at each learning rate in LRS side
# by side, score every checkpoint from one epoch on (half-epoch steps) on OpenBookQA dev and StrategyQA
# held-out, and score the best KARD and the best fine-tuned checkpoint on all four sets. Every variant
# gets the same optimizer steps (two epochs of the KARD examples); a variant named finetune* is scored
# as fine-tuning, any other as KARD (kard-bm25), and all KARD variants compete for the one choice.
# Needs the examples and knowledge bases benchmarks/train_default_student.sh builds in $RUN (run it with
# TRAIN=0 first), and the question files under $DATA.
#   RUN=runs/default-student bash benchmarks/gpu_student_sweep.sh
# Training stops at TRAIN_SECONDS, dev scoring at EVAL_SECONDS and the final scoring at FINAL_SECONDS (a
# lease is short); what finished by then is scored.
# Results: $SWEEP/scores/<candidate>/<set>/ (kard evaluate folders), $SWEEP/choice.json, $SWEEP/results.md.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
SWEEP=${SWEEP:-$RUN/gpu-sweep}
EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-32}
LRS=${LRS:-"5e-4 1e-3"}
VARIANTS=${VARIANTS:-"kard finetune"}
SEED=${SEED:-0}  # training seed (data order, LoRA init) of every run
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
EVAL_SECONDS=${EVAL_SECONDS:-150}
FINAL_SECONDS=${FINAL_SECONDS:-120}
EVAL_BATCH=${EVAL_BATCH:-128}
LIMIT=${LIMIT:+--limit $LIMIT}
mkdir -p "$SWEEP"
examples=$(wc -l < "$RUN/all_kard.jsonl")
per_epoch=$(( (examples + BATCH - 1) / BATCH ))
STEPS=${STEPS:-$(( EPOCHS * per_epoch ))}
SAVE=${SAVE:-$(( (per_epoch + 1) / 2 ))}
echo "sweep: $STEPS optimizer steps x batch $BATCH for every run (kard: $examples examples, $per_epoch steps an epoch), lrs $LRS, variants $VARIANTS, seed $SEED"

source benchmarks/student_eval_sets.sh

method_of() {  # variant -> the condition it is scored as
  case $1 in finetune*) echo finetune ;; *) echo kard ;; esac
}

train() {  # variant lr
  python -m kard train-student --examples "$RUN/all_$1.jsonl" --out "$SWEEP/$1-lr$2" --steps "$STEPS" \
    --batch-size "$BATCH" --grad-accum 1 --lr "$2" --lora --keep-adapter --bf16 --max-length-cap 512 \
    --save-steps "$SAVE" --keep-checkpoints 20 --seed "$SEED" --resume --no-progress > "$SWEEP/$1-lr$2.log" 2>&1
}

score() {  # student-folder set out-folder method
  local questions knowledge
  IFS='|' read -r questions knowledge <<< "$(eval_set $2)"
  if [ "$4" = finetune ]; then
    python -m kard evaluate --no-progress --batch-size "$EVAL_BATCH" $LIMIT $questions --student "$1" \
      --condition finetune --max-new-tokens 128 --out "$3/$2" >> "$3.log" 2>&1
  else
    python -m kard evaluate --no-progress --batch-size "$EVAL_BATCH" $LIMIT $questions $knowledge --student "$1" \
      --condition kard-bm25 --out "$3/$2" >> "$3.log" 2>&1
  fi
}

candidates() {  # run folder -> the final adapter, then the checkpoints from one epoch on, latest first
  local run=$1 step
  [ -e "$run/adapter_config.json" ] && echo "$run"
  for checkpoint in $(ls -d "$run"/checkpoints/checkpoint-* 2>/dev/null | sort -V -r); do
    [ -e "$checkpoint/adapter_config.json" ] || continue
    step=${checkpoint##*-}
    [ "$step" -ge "$(( per_epoch < STEPS ? per_epoch : STEPS ))" ] && [ "$step" -lt "$STEPS" ] && echo "$checkpoint"
  done
}

wait_until() {  # seconds pids...: wait for the pids, kill those still running after `seconds`
  local deadline=$(( $(date +%s) + $1 )); shift
  while :; do
    local running=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && running+=("$pid"); done
    [ ${#running[@]} -eq 0 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "deadline: stopping ${#running[@]} process(es)"; kill "${running[@]}" 2>/dev/null; sleep 2; return 1
    fi
    sleep 2
  done
}

started=$(date +%s)
pids=()
for lr in $LRS; do
  for variant in $VARIANTS; do train "$variant" "$lr" & pids+=($!); done
done
wait_until "$TRAIN_SECONDS" "${pids[@]}"
echo "training: $(( $(date +%s) - started )) s"; grep -h "^trained\|optimizer steps" "$SWEEP"/*.log

started=$(date +%s)
pids=()
for lr in $LRS; do
  for variant in $VARIANTS; do
    ( for candidate in $(candidates "$SWEEP/$variant-lr$lr"); do
        name=$(basename "$candidate"); [ "$candidate" = "$SWEEP/$variant-lr$lr" ] && name=final
        mkdir -p "$SWEEP/scores"; echo "$candidate" > "$SWEEP/scores/$variant-lr$lr-$name.student"
        for set in obqa strategyqa; do
          score "$candidate" $set "$SWEEP/scores/$variant-lr$lr-$name" "$(method_of "$variant")"
        done
      done ) & pids+=($!)
  done
done
wait_until "$EVAL_SECONDS" "${pids[@]}"
echo "dev scoring: $(( $(date +%s) - started )) s"

python benchmarks/sweep_choice.py "$SWEEP" > "$SWEEP/choice.json" || exit 1
cat "$SWEEP/choice.json"
pids=()
for method in kard finetune; do
  read -r folder name < <(python -c "import json, sys; chosen = json.load(open(sys.argv[1]))[sys.argv[2]]
print(chosen['student'], chosen['name'])" "$SWEEP/choice.json" $method)
  for set in medqa demo; do score "$folder" $set "$SWEEP/scores/$name" $method & pids+=($!); done
done
wait_until "$FINAL_SECONDS" "${pids[@]}"
python benchmarks/sweep_choice.py "$SWEEP" --table > "$SWEEP/results.md"
cat "$SWEEP/results.md"

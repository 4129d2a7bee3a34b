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
# Several seeds: SEEDS="0 1 2" trains every variant once per seed (runs named <variant>-s<seed>-lr<lr>);
# SOUP=1 then also scores each variant's soup, the average of its seeds' final adapters
# (benchmarks/adapter_soup.py), named <variant>-soup-lr<lr>; CHECKPOINTS=0 scores final adapters only.
# Results: $SWEEP/scores/<candidate>/<set>/ (kard evaluate folders), $SWEEP/choice.json, $SWEEP/results.md.
# Settings (environment variables; the script takes no arguments but -h/--help):
#   DATA=../shared/data            the shared datasets (the question files of the four evaluation sets)
#   RUN=runs/default-student       the folder of benchmarks/train_default_student.sh (kb_obqa, kb_strategyqa,
#                                  all_<variant>.jsonl)
#   SWEEP=RUN/gpu-sweep            where the runs, scores and choice are written
#   VARIANTS="kard finetune" LRS="5e-4 1e-3" SEED=0 SEEDS=SEED SOUP=0 CHECKPOINTS=1
#   EPOCHS=2 BATCH=32              every run's optimizer steps (STEPS=EPOCHS epochs of the KARD examples)
#   SAVE=half an epoch             steps between checkpoints
#   TRAIN_SECONDS=300 EVAL_SECONDS=150 FINAL_SECONDS=120   the deadlines
#   EVAL_BATCH=128 LIMIT=          questions answered together; the first LIMIT of each set only (a quick check)
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/gpu_student_sweep.sh "$@"
source benchmarks/student_eval_sets.sh  # also DATA and RUN, with their defaults
VARIANTS=${VARIANTS:-"kard finetune"}
require_eval_sets
require_run "$RUN" all_kard.jsonl $(for variant in $VARIANTS; do echo "all_$variant.jsonl"; done)
source benchmarks/deadline.sh  # wait_until, and job control so that it stops a job's commands too
SWEEP=${SWEEP:-$RUN/gpu-sweep}
EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-32}
LRS=${LRS:-"5e-4 1e-3"}
SEED=${SEED:-0}  # training seed (data order, LoRA init) of every run
SEEDS=${SEEDS:-$SEED}
SOUP=${SOUP:-0}
CHECKPOINTS=${CHECKPOINTS:-1}
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
echo "sweep: $STEPS optimizer steps x batch $BATCH for every run (kard: $examples examples, $per_epoch steps an epoch), lrs $LRS, variants $VARIANTS, seeds $SEEDS"


method_of() {  # variant -> the condition it is scored as
  case $1 in finetune*) echo finetune ;; *) echo kard ;; esac
}

run_name() {  # variant lr seed -> the run's folder name (the seed appears when there are several)
  if [ "$(wc -w <<< "$SEEDS")" -gt 1 ]; then echo "$1-s$3-lr$2"; else echo "$1-lr$2"; fi
}

train() {  # variant lr seed
  local name; name=$(run_name "$1" "$2" "$3")
  python -m kard train-student --examples "$RUN/all_$1.jsonl" --out "$SWEEP/$name" --steps "$STEPS" \
    --batch-size "$BATCH" --grad-accum 1 --lr "$2" --lora --keep-adapter --bf16 --max-length-cap 512 \
    --save-steps "$SAVE" --keep-checkpoints 20 --seed "$3" --resume --no-progress > "$SWEEP/$name.log" 2>&1
}

soup() {  # variant lr: average the final adapters of the variant's seeds into $SWEEP/<variant>-soup-lr<lr>
  local finals=() seed run
  for seed in $SEEDS; do
    run=$SWEEP/$(run_name "$1" "$2" "$seed")
    [ -e "$run/adapter_config.json" ] && finals+=("$run")
  done
  [ ${#finals[@]} -ge 2 ] || { echo "soup $1 lr $2: ${#finals[@]} final adapter(s), not souped"; return 0; }
  python benchmarks/adapter_soup.py "${finals[@]}" --out "$SWEEP/$1-soup-lr$2" > "$SWEEP/$1-soup-lr$2.log" 2>&1
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
  [ "$CHECKPOINTS" = 1 ] || return 0
  for checkpoint in $(ls -d "$run"/checkpoints/checkpoint-* 2>/dev/null | sort -V -r); do
    [ -e "$checkpoint/adapter_config.json" ] || continue
    step=${checkpoint##*-}
    [ "$step" -ge "$(( per_epoch < STEPS ? per_epoch : STEPS ))" ] && [ "$step" -lt "$STEPS" ] && echo "$checkpoint"
  done
}

started=$(date +%s)
pids=()
for lr in $LRS; do
  for variant in $VARIANTS; do
    for seed in $SEEDS; do train "$variant" "$lr" "$seed" & pids+=($!); done
  done
done
wait_until "$TRAIN_SECONDS" "${pids[@]}"
echo "training: $(( $(date +%s) - started )) s"; grep -h "^trained\|optimizer steps" "$SWEEP"/*.log
runs=()  # run folders to score: every seed's run, then the soups
for lr in $LRS; do
  for variant in $VARIANTS; do
    for seed in $SEEDS; do runs+=("$(run_name "$variant" "$lr" "$seed")"); done
    if [ "$SOUP" = 1 ]; then soup "$variant" "$lr"; [ -e "$SWEEP/$variant-soup-lr$lr" ] && runs+=("$variant-soup-lr$lr"); fi
  done
done

started=$(date +%s)
pids=()
for run in "${runs[@]}"; do
  ( for candidate in $(candidates "$SWEEP/$run"); do
      name=$(basename "$candidate"); [ "$candidate" = "$SWEEP/$run" ] && name=final
      mkdir -p "$SWEEP/scores"; echo "$candidate" > "$SWEEP/scores/$run-$name.student"
      for set in obqa strategyqa; do
        score "$candidate" $set "$SWEEP/scores/$run-$name" "$(method_of "$run")"
      done
    done ) & pids+=($!)
done
wait_until "$EVAL_SECONDS" "${pids[@]}"
echo "dev scoring: $(( $(date +%s) - started )) s"

rm -f "$SWEEP/choice.json"  # a rerun's choice, whole or not at all
write_once "$SWEEP/choice.json" python benchmarks/sweep_choice.py "$SWEEP" || exit 1
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

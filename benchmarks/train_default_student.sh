#!/usr/bin/env bash
# From ../shared/data to the shipped default student (demo/student) and its same-budget fine-tuning
# baseline. Every step skips work already done, and training resumes from its latest checkpoint, so an
# interrupted run continues where it stopped: just run it again.
#   RUN=runs/default-student bash benchmarks/train_default_student.sh       (CPU: bf16 autocast, ~4 h a student)
#   TRAIN=0 ... builds the examples and knowledge bases only (then, on a GPU: benchmarks/gpu_student_sweep.sh,
#   which trained the shipped adapter: the same recipe, 32 x 1 per step instead of 8 x 4, minutes).
# Settings (environment variables; the script takes no arguments but -h/--help):
#   DATA=../shared/data        the shared datasets (openbookqa/, strategyqa/, medqa/)
#   RUN=runs/default-student   where the knowledge bases, examples and students are written
#   TRAIN=1                    0: build the knowledge bases and examples only
#   STEPS=438 BATCH=8 ACCUM=4 LR=1e-3 SEED=0   the training budget (438 steps x 32 = 2 epochs)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/train_default_student.sh "$@"
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
STEPS=${STEPS:-438}
BATCH=${BATCH:-8}
ACCUM=${ACCUM:-4}
LR=${LR:-1e-3}
SEED=${SEED:-0}
TRAIN=${TRAIN:-1}
require_data "$DATA" openbookqa/openbook.txt openbookqa/crowdsourced-facts.txt openbookqa/train_complete.jsonl \
  strategyqa/wiki_paragraphs.jsonl strategyqa/train.json strategyqa/flan_cot_train.tsv medqa/dev.jsonl \
  medqa/dev_teacher_cot_gpt-4-32k.jsonl
mkdir -p "$RUN"
kard() { python -m kard "$@"; }
once() { local out=$1; shift; [ -e "$out" ] || "$@"; }

# Knowledge: OpenBookQA's book + crowd facts; StrategyQA's Wikipedia paragraphs; the demo passages (MedQA).
write_once "$RUN/obqa_passages.txt" cat "$DATA/openbookqa/openbook.txt" "$DATA/openbookqa/crowdsourced-facts.txt"
once "$RUN/kb_obqa" kard index --passages "$RUN/obqa_passages.txt" --out "$RUN/kb_obqa" --no-progress
once "$RUN/kb_strategyqa" kard index --passages "$DATA/strategyqa/wiki_paragraphs.jsonl" --out "$RUN/kb_strategyqa" --no-progress
once "$RUN/medqa_gpt4.jsonl" kard import-rationales --kind medqa-gpt4 --path "$DATA/medqa/dev_teacher_cot_gpt-4-32k.jsonl" \
  --questions "$DATA/medqa/dev.jsonl" --only-correct --out "$RUN/medqa_gpt4.jsonl"

# Examples: options shuffled per example, rationales concluded by the gold option's text. examples NAME FLAGS...
# writes obqa_NAME, strategyqa_NAME and medqa_NAME.jsonl with the build-examples FLAGS added.
examples() {
  local name=$1; shift
  once "$RUN/obqa_$name.jsonl" kard build-examples --questions "$DATA/openbookqa/train_complete.jsonl" --facts \
    --kb "$RUN/kb_obqa" --top-n 3 --shuffle-options --conclude --seed $SEED "$@" --out "$RUN/obqa_$name.jsonl"
  once "$RUN/strategyqa_$name.jsonl" kard build-examples --questions "$DATA/strategyqa/train.json" \
    --rationales "$DATA/strategyqa/flan_cot_train.tsv" --kb "$RUN/kb_strategyqa" --holdout 300 --seed 0 \
    --top-n 1 --conclude "$@" --out "$RUN/strategyqa_$name.jsonl"
  once "$RUN/medqa_$name.jsonl" kard build-examples --questions "$DATA/medqa/dev.jsonl" --rationales "$RUN/medqa_gpt4.jsonl" \
    --kb demo/passages.jsonl --holdout 300 --seed 0 --top-n 1 --shuffle-options --conclude "$@" --out "$RUN/medqa_$name.jsonl"
}
examples kard --method kard
examples finetune --method finetune
# Passage-source variants for benchmarks/gpu_student_sweep.sh's VARIANTS (docs/results.md, "A second GPU sweep").
examples kard-question --passages-from question
examples kard-mixed --passages-from mixed

# The training sets: all_<set>.jsonl joined from the per-dataset files (benchmarks/example_sets.sh).
source benchmarks/example_sets.sh
join_example_sets "$RUN"

[ "$TRAIN" = 1 ] || exit 0

# The same budget for both: STEPS optimizer steps of BATCH x ACCUM examples, LoRA r16, bf16 autocast.
for m in kard finetune; do
  [ -e "$RUN/student-$m/adapter_config.json" ] || nice python -m kard train-student --examples "$RUN/all_$m.jsonl" \
    --out "$RUN/student-$m" --steps $STEPS --batch-size $BATCH --grad-accum $ACCUM --lr $LR --lora --keep-adapter \
    --bf16 --max-length-cap 512 --save-steps 10 --seed $SEED --resume --no-progress
done

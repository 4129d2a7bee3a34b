#!/usr/bin/env bash
# The shipped student's greedy answers from CTranslate2 (int8) against transformers (float32, the
# reference) on the 51 demo questions and the first 100 OpenBookQA dev questions, with the settings of
# benchmarks/evaluate_default_student.sh (whose transformers results it reuses, or writes when absent).
#   RUN=runs/default-student bash benchmarks/engine_agreement.sh
# Settings (environment variables; the script takes no arguments but -h/--help):
#   DATA=../shared/data        the shared datasets (openbookqa/dev_complete.jsonl)
#   RUN=runs/default-student   the folder of benchmarks/train_default_student.sh (its kb_obqa); results go
#                              to RUN/eval/{demo,obqa}/{kard,kard-ctranslate2}
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/engine_agreement.sh "$@"
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
require_data "$DATA" openbookqa/dev_complete.jsonl
require_run "$RUN" kb_obqa
OUT=$RUN/eval
ev() { nice python -m kard evaluate --no-progress --student demo/student --condition kard-bm25 "$@"; }
for engine in transformers ctranslate2; do
  folder=$([ "$engine" = transformers ] && echo kard || echo kard-$engine)
  ev --engine $engine --dataset demo --max-new-tokens 128 --k 2 --out "$OUT/demo/$folder"
  ev --engine $engine --dataset obqa --questions $DATA/openbookqa/dev_complete.jsonl --max-new-tokens 64 \
    --kb $RUN/kb_obqa --k 3 --limit 100 --out "$OUT/obqa/$folder"
done
echo "| questions | n | same letter % (95% CI) | transformers accuracy % | ctranslate2 accuracy % | right only with transformers / only with ctranslate2, McNemar |"
echo "|---|---:|---:|---:|---:|---|"
python benchmarks/compare_runs.py "$OUT/demo/kard/kard-bm25-greedy.jsonl" \
  "$OUT/demo/kard-ctranslate2/kard-bm25-greedy.jsonl" --name "demo questions"
python benchmarks/compare_runs.py "$OUT/obqa/kard/kard-bm25-greedy.jsonl" \
  "$OUT/obqa/kard-ctranslate2/kard-bm25-greedy.jsonl" --name "OpenBookQA dev (first 100)"

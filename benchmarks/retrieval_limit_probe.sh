#!/usr/bin/env bash
# Probe (docs/results.md, "Is retrieval what limits the student?"): the shipped student on OpenBookQA dev
# with 1, 3 or 5 passages from BM25 or from the shipped reranker, and with the gold fact itself retrieved
# (the oracle: BM25 queried with the gold fact), then accuracy split by where the gold fact was
# (benchmarks/gold_fact_breakdown.py); and on StrategyQA held-out, the paragraph BM25 finds with the
# question against the one it finds with the FLAN rationale (the oracle), compared question by question.
# Greedy, transformers float32, the settings of benchmarks/evaluate_default_student.sh otherwise
# (benchmarks/student_eval_sets.sh). Resumable (kard evaluate skips answered questions).
#   RUN=runs/default-student OUT=runs/k-probe bash benchmarks/retrieval_limit_probe.sh     (~35 min on 2 CPU cores)
# Settings (environment variables; no arguments but -h/--help): DATA=../shared/data, RUN=runs/default-student
# (the folder of benchmarks/train_default_student.sh), OUT=runs/k-probe.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/retrieval_limit_probe.sh "$@"
source benchmarks/student_eval_sets.sh  # also DATA and RUN, with their defaults
require_data "$DATA" openbookqa/dev_complete.jsonl strategyqa/train.json strategyqa/flan_cot_train.tsv
require_run "$RUN" kb_obqa kb_strategyqa
P=${OUT:-runs/k-probe}
mkdir -p "$P"
ev() {  # set flags...: the shipped student on an evaluation set, its question and knowledge flags first
  local questions knowledge set=$1; shift
  IFS='|' read -r questions knowledge <<< "$(eval_set "$set")"
  nice python -m kard evaluate --no-progress --batch-size 16 $questions $knowledge --student demo/student "$@"
}
QUESTIONS=$DATA/openbookqa/dev_complete.jsonl
[ -e "$P/dev_facts.jsonl" ] || python -m kard import-rationales --kind obqa-facts --path "$QUESTIONS" --out "$P/dev_facts.jsonl"
for k in 1 3 5; do
  ev obqa --k $k --condition kard-bm25 --out "$P/bm25-k$k"
  ev obqa --k $k --condition kard-reranker --reranker demo/reranker --out "$P/rerank-k$k"
done
for k in 1 3; do ev obqa --k $k --condition oracle --oracle-rationales "$P/dev_facts.jsonl" --out "$P/oracle-k$k"; done
python benchmarks/gold_fact_breakdown.py --questions "$QUESTIONS" --passages "$RUN/kb_obqa/passages.jsonl" \
  "$P"/bm25-k{1,3,5} "$P"/rerank-k{1,3,5} "$P"/oracle-k{1,3}

[ -e "$P/sqa_flan.jsonl" ] || python -m kard import-rationales --kind strategyqa-flan \
  --path "$DATA/strategyqa/flan_cot_train.tsv" --questions "$DATA/strategyqa/train.json" --out "$P/sqa_flan.jsonl"
ev strategyqa --condition kard-bm25 --out "$P/sqa-bm25-k1"
ev strategyqa --condition oracle --oracle-rationales "$P/sqa_flan.jsonl" --out "$P/sqa-oracle-k1"
python benchmarks/compare_runs.py "$P/sqa-bm25-k1" "$P/sqa-oracle-k1" --name "StrategyQA: BM25 vs oracle"

#!/usr/bin/env bash
# The KARD training run documented in docs/training.md: StrategyQA train (FLAN human rationales),
# Wikipedia paragraphs as the knowledge base, SmolLM2-135M student, MiniLM cross-encoder reranker.
# Run from the repository root; it reads ../shared/data and writes runs/strategyqa/ (git-ignored).
#   mkdir -p runs/strategyqa && nice -n 10 bash benchmarks/train_strategyqa.sh > runs/strategyqa/run.log 2>&1 &
# Sizes are cut to what a 2-core machine shared with other jobs finishes in about an hour; raise
# STUDENT_STEPS / RERANKER_STEPS / EVAL_QUESTIONS (and drop OMP_NUM_THREADS=1) on a free machine.
# Settings (environment variables; no arguments but -h/--help): DATA=../shared/data (or KARD_DATA),
# STUDENT_STEPS=40, RERANKER_STEPS=100, EVAL_QUESTIONS=40.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/train_strategyqa.sh "$@"
DATA_DIR=${KARD_DATA:-${DATA:-../shared/data}}
require_data "$DATA_DIR" strategyqa/train.json strategyqa/flan_cot_train.tsv strategyqa/wiki_paragraphs.jsonl
D=$DATA_DIR/strategyqa
R=runs/strategyqa
SPLIT="--holdout 300 --seed 0"   # the same split `python -m kard evaluate --holdout 300 --seed 0` tests on
DATA="--questions $D/train.json --rationales $D/flan_cot_train.tsv --kb $R/kb $SPLIT"
mkdir -p $R
[ -d $R/kb ] || python -m kard index --passages $D/wiki_paragraphs.jsonl --out $R/kb --no-progress
for method in kard reasoning finetune; do
  python -m kard build-examples $DATA --method $method --out $R/examples_$method.jsonl
done
echo "== student $(date +%T)"
# a finished student is kept (resuming a finished run would train one more step); an interrupted one resumes
[ -e $R/student-kard/kard_training.json ] || python -m kard train-student --examples $R/examples_kard.jsonl \
  --out $R/student-kard --resume \
  --steps ${STUDENT_STEPS:-40} --batch-size 4 --grad-accum 1 --lr 1e-4 --max-length-cap 256 --save-steps 20
echo "== reranker $(date +%T)"
OMP_NUM_THREADS=1 python -m kard train-reranker $DATA --out $R/reranker-minilm \
  --steps ${RERANKER_STEPS:-100} --batch-size 2 --max-length 128 --save-steps 0 --no-progress
echo "== eval $(date +%T)"
OMP_NUM_THREADS=1 python -m kard eval-reranker $DATA --limit ${EVAL_QUESTIONS:-40} --reranker $R/reranker-minilm \
  --json $R/reranker_eval.json --no-progress
echo "== reranker run 2 $(date +%T)"
OMP_NUM_THREADS=1 python -m kard train-reranker $DATA --out $R/reranker-minilm-lr1e-4 \
  --steps ${RERANKER_STEPS:-100} --batch-size 2 --max-length 128 --save-steps 0 \
  --learning-rate 1e-4 --head-learning-rate 1e-2 --no-progress
OMP_NUM_THREADS=1 python -m kard eval-reranker $DATA --limit ${EVAL_QUESTIONS:-40} --reranker $R/reranker-minilm-lr1e-4 \
  --json $R/reranker_eval_lr1e-4.json --kl --no-progress
echo "== plot $(date +%T)"
python benchmarks/plot_training_curves.py --run $R --reranker reranker-minilm --reranker reranker-minilm-lr1e-4 \
  --eval reranker_eval_lr1e-4.json --out docs/training_curves.png
echo "== done $(date +%T)"

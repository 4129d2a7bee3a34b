# The shipped student's four evaluation sets, sourced by evaluate_default_student.sh and gpu_student_sweep.sh.
# eval_set NAME prints "question flags|knowledge flags" (the knowledge each student was trained with; the
# app's for the demo questions). Uses DATA (default ../shared/data) and RUN (the folder with the knowledge
# bases, default runs/default-student); source it from the repository root, after benchmarks/script_checks.sh.
# New tokens: 64 and 96 where the training rationales are short (OpenBookQA facts, FLAN), 128 for MedQA and the app.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run, not sourced
  echo "error: benchmarks/student_eval_sets.sh holds functions sourced by evaluate_default_student.sh," \
    "gpu_student_sweep.sh and the probes;" \
    "it does nothing alone. Fix: run one of those (each has --help)" >&2
  exit 2
fi
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
EVAL_SETS=(obqa strategyqa medqa demo)

# Every set's questions and knowledge base exist, else one line naming the fix (benchmarks/script_checks.sh).
require_eval_sets() {
  require_data "$DATA" openbookqa/dev_complete.jsonl strategyqa/train.json medqa/dev.jsonl
  require_run "$RUN" kb_obqa kb_strategyqa
}

eval_set() {
  case $1 in
    obqa) echo "--dataset obqa --questions $DATA/openbookqa/dev_complete.jsonl --max-new-tokens 64|--kb $RUN/kb_obqa --k 3" ;;
    strategyqa) echo "--dataset strategyqa --questions $DATA/strategyqa/train.json --holdout 300 --seed 0 --max-new-tokens 96|--kb $RUN/kb_strategyqa --k 1" ;;
    medqa) echo "--dataset medqa --questions $DATA/medqa/dev.jsonl --holdout 300 --seed 0 --max-new-tokens 128|--kb demo/passages.jsonl --k 1" ;;
    demo) echo "--dataset demo --max-new-tokens 128|--k 2" ;;
    *) echo "unknown evaluation set: $1" >&2; return 1 ;;
  esac
}

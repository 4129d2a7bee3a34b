# The example sets the students train on, each joined from per-dataset files in a run folder (written by
# benchmarks/train_default_student.sh). Sourced by it and by benchmarks/gpu_lease.sh, which ships only the
# per-dataset files to a lent GPU and joins them there.
#   join_example_sets RUN    writes RUN/all_<set>.jsonl for every set below whose parts exist (once; an
#                            interrupted join leaves no partial file)
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run, not sourced
  echo "error: benchmarks/example_sets.sh holds functions sourced by train_default_student.sh and gpu_lease.sh;" \
    "it does nothing alone. Fix: run one of those (each has --help)" >&2
  exit 2
fi

EXAMPLE_SETS=(
  "finetune:obqa_finetune strategyqa_finetune medqa_finetune"
  "kard:obqa_kard strategyqa_kard medqa_kard"
  "kard-question:obqa_kard-question strategyqa_kard-question medqa_kard-question"
  "kard-mixed:obqa_kard-mixed strategyqa_kard-mixed medqa_kard-mixed"
  # both passage sources: every question twice (the same steps are then one epoch)
  "kard-both:obqa_kard strategyqa_kard medqa_kard obqa_kard-question strategyqa_kard-question medqa_kard-question"
  # both for OpenBookQA only (the StrategyQA part of kard-both fell to 49.0%; docs/results.md)
  "kard-obqaboth:obqa_kard obqa_kard-question strategyqa_kard medqa_kard"
)

join_example_sets() {
  local run=$1 entry name part files
  for entry in "${EXAMPLE_SETS[@]}"; do
    name=${entry%%:*}
    [ -e "$run/all_$name.jsonl" ] && continue
    files=()
    for part in ${entry#*:}; do files+=("$run/$part.jsonl"); done
    ls "${files[@]}" > /dev/null 2>&1 || continue
    cat "${files[@]}" > "$run/all_$name.jsonl.partial" && mv "$run/all_$name.jsonl.partial" "$run/all_$name.jsonl"
  done
  return 0
}

# Deadlines for background jobs, sourced by gpu_student_sweep.sh (a GPU lease is short).
# Job control puts each background job in its own process group, so stopping a job also stops the
# command it is running: killing only the job's subshell left its python training on, orphaned.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run, not sourced
  echo "error: benchmarks/deadline.sh holds functions sourced by gpu_student_sweep.sh; it does nothing alone." \
    "Fix: run one of those (each has --help)" >&2
  exit 2
fi
set -m

wait_until() {  # seconds pids...: wait for the pids, stop those still running after `seconds`, with
  # everything they started (their process group)
  local deadline=$(( $(date +%s) + $1 )); shift
  while :; do
    local running=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && running+=("$pid"); done
    [ ${#running[@]} -eq 0 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "deadline: stopping ${#running[@]} process(es)"
      for pid in "${running[@]}"; do kill -- "-$pid" 2>/dev/null; done
      sleep 2; return 1
    fi
    sleep 2
  done
}

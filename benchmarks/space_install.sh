#!/usr/bin/env bash
# What a Space does, on a fresh machine: a new virtual environment, `pip install -r requirements.txt`
# alone, then offline answers with the default student and the app's page served. Prints the timings.
#   bash benchmarks/space_install.sh            (PIP_RETRIES=0 where PyTorch's CPU index is unreachable)
# Settings (environment variables; the script takes no arguments but -h/--help):
#   WORK=a new temporary folder   where the virtual environment, KARD_CACHE and app.log are written
#   PIP_RETRIES=0                 pip's retries (0: skip an unreachable index at once)
#   PORT=7861                     the app's port
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/script_checks.sh
script_arguments benchmarks/space_install.sh "$@"
WORK=${WORK:-$(mktemp -d)}
export KARD_CACHE="$WORK/cache" PIP_RETRIES=${PIP_RETRIES:-0}
python -m venv "$WORK/venv"
started=$(date +%s)
"$WORK/venv/bin/pip" install -q -r requirements.txt
echo "install: $(( $(date +%s) - started )) s"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
started=$(date +%s)
"$WORK/venv/bin/python" -m kard ask --sample demo-q-med-01 --max-new-tokens 64
echo "first ask (GGUF conversion, index build, load, answer): $(( $(date +%s) - started )) s"
GRADIO_SERVER_PORT=${PORT:-7861} "$WORK/venv/bin/python" app.py > "$WORK/app.log" 2>&1 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
started=$(date +%s)
until curl -fs "http://127.0.0.1:${PORT:-7861}/" > /dev/null; do
  kill -0 $app 2>/dev/null || { cat "$WORK/app.log"; exit 1; }
  sleep 1
done
echo "app page served after $(( $(date +%s) - started )) s"

"""benchmarks/deadline.sh: a job past its deadline is stopped with the commands it started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
source benchmarks/deadline.sh
( sleep 0.2 ) & quick=$!
wait_until 30 $quick; echo "quick rc=$?"
# a job like the sweep's: a subshell running a long command in the foreground, then another
( python -c 'import os, time; open("{pid_file}", "w").write(str(os.getpid())); time.sleep(120)'; echo done ) & slow=$!
while [ ! -s "{pid_file}" ]; do sleep 0.1; done
wait_until 1 $slow; echo "slow rc=$?"
"""


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_wait_until_stops_a_late_job_and_the_command_it_runs(tmp_path):
    pid_file = tmp_path / "pid"
    out = subprocess.run(["bash", "-c", SCRIPT.format(pid_file=pid_file)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert "quick rc=0" in out.stdout, out.stderr
    assert "deadline: stopping 1 process(es)" in out.stdout and "slow rc=1" in out.stdout
    pid = int(pid_file.read_text())
    try:
        assert not running(pid), "the job's python outlived its deadline"
    finally:
        if running(pid):
            os.kill(pid, 9)

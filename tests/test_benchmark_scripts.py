"""The reproduction .sh scripts in benchmarks/: missing data is one line naming the fix, and nothing is left
behind; -h/--help prints the settings instead of starting a job; unknown arguments are refused.

python, python3 and pip are stubs that fail here, so a script that starts a job (an install, training, an
evaluation) fails its test instead of running it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_SCRIPTS = ("train_default_student.sh", "evaluate_default_student.sh", "train_strategyqa.sh",
                "retrieval_limit_probe.sh", "continuation_probe.sh", "engine_agreement.sh", "gpu_student_sweep.sh")
STUDENT_RUN = ("DATA=../shared/data", "RUN=runs/default-student")
SETTINGS = {  # script -> what its --help must name
    "train_default_student.sh": STUDENT_RUN,
    "evaluate_default_student.sh": STUDENT_RUN,
    "engine_agreement.sh": STUDENT_RUN,
    "gpu_student_sweep.sh": (*STUDENT_RUN, "SWEEP=RUN/gpu-sweep", "VARIANTS=", "TRAIN_SECONDS=300"),
    "gpu_lease.sh": (*STUDENT_RUN, "stage", "install", "sweep", "unstage", "OUT"),
    "space_install.sh": ("WORK=", "PIP_RETRIES=0", "PORT=7861"),
}
STUBS = ("python", "python3", "pip", "pip3")


@pytest.fixture(autouse=True)
def no_jobs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put failing stubs of python and pip first on PATH for the scripts run here."""
    stubs = tmp_path_factory.mktemp("stubs")
    for name in STUBS:
        (stubs / name).write_text(f"#!/bin/sh\necho 'stub: {name} started' >&2\nexit 97\n", encoding="utf-8")
        (stubs / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{stubs}{os.pathsep}{os.environ['PATH']}")


def run_script(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    env = {**os.environ, "DATA": str(data), "RUN": str(tmp_path / "run"), "OUT": str(tmp_path / "out"),
           "WORK": str(tmp_path / "work")}
    env.pop("KARD_DATA", None)
    return subprocess.run(["bash", str(ROOT / "benchmarks" / name), *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name", DATA_SCRIPTS)
def test_missing_data_names_the_folder_and_leaves_nothing(name: str, tmp_path: Path) -> None:
    done = run_script(name, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "does not exist (the datasets)" in done.stderr and "../shared/data" in done.stderr
    assert "DATA=" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_help_prints_the_settings_and_starts_nothing(name: str, tmp_path: Path) -> None:
    for flag in ("--help", "-h"):
        done = run_script(name, tmp_path, flag)
        assert done.returncode == 0, done.stderr
        assert all(setting in done.stdout for setting in SETTINGS[name]), done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    refused = run_script(name, tmp_path, "--steps", "3")
    takes = "takes one argument, stage" if name == "gpu_lease.sh" else "takes no arguments"
    assert refused.returncode == 2 and takes in refused.stderr and "--help" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and [p.name for p in tmp_path.iterdir()] == ["data"]


@pytest.mark.parametrize("args", [(), ("bogus",), ("--help", "sweep")])
def test_gpu_lease_takes_one_step(args: tuple[str, ...], tmp_path: Path) -> None:
    refused = run_script("gpu_lease.sh", tmp_path, *args)
    assert refused.returncode == 2 and "stage, install, sweep or unstage" in refused.stderr, refused.stderr
    assert "--help" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ("evaluate_default_student.sh", "engine_agreement.sh", "gpu_student_sweep.sh"))
def test_a_missing_run_folder_points_to_the_script_that_builds_it(name: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for file in ("openbookqa/dev_complete.jsonl", "strategyqa/train.json", "medqa/dev.jsonl"):
        (data / file).parent.mkdir(parents=True, exist_ok=True)
        (data / file).write_text("{}\n", encoding="utf-8")
    done = run_script(name, tmp_path)
    assert done.returncode == 2 and "kb_obqa does not exist" in done.stderr, done.stderr
    assert "TRAIN=0 RUN=" in done.stderr and "train_default_student.sh" in done.stderr
    assert not (tmp_path / "run").exists()


def test_an_interrupted_copy_leaves_no_partial_file(tmp_path: Path) -> None:
    """write_once: the output appears only when its command finished; a failed one leaves no OUT."""
    script = f"""source {ROOT}/benchmarks/script_checks.sh
write_once {tmp_path}/ok.txt echo done
write_once {tmp_path}/failed.txt cat {tmp_path}/no-such-file || true"""
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)
    assert (tmp_path / "ok.txt").read_text() == "done\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.txt"]


@pytest.mark.parametrize("name", ("deadline.sh", "student_eval_sets.sh", "example_sets.sh", "script_checks.sh"))
def test_a_file_of_sourced_functions_run_alone_says_so(name: str, tmp_path: Path) -> None:
    done = run_script(name, tmp_path, "--help")
    assert done.returncode == 2 and "holds functions sourced by" in done.stderr
    assert "Fix: run one of those" in done.stderr

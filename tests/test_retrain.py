"""Retrain rounds on a tiny student: a loadable checkpoint, the lock, failures, cancel, background, the app panel."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from kard.loop import jobs, retrain, round_folder
from kard.annotations import AnnotationStore, Correction, PassageRecord
from kard.ui.studio import InputError, Studio
from kard.ui.loop_tab import APP_TRAINING, LoopPanel
from kard.config import AnnotationStoreConfig
from kard.distill import StudentExample, write_examples
from kard.knowledge import KnowledgeBase
from kard.prompts import student_input
from kard.records import Passage, Question
from tests.interruptible import popen_interruptible
from tests.tiny_models import save_tiny_decoder

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=2, retry_wait_s=0.02)
PASSAGES = [Passage("p1", "Scurvy", "Scurvy is vitamin C deficiency."),
            Passage("p2", "Plants", "Plants absorb carbon dioxide and release oxygen."),
            Passage("p3", "Rickets", "Rickets is vitamin D deficiency.")]
Q1 = Question("q1", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"}, "A", "demo")
Q2 = Question("q2", "Which gas do plants absorb?", {"A": "Oxygen", "B": "Carbon dioxide"}, "B", "demo")
TINY_TRAINING = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length_cap": 192, "learning_rate": 1e-2,
                 "save_steps": 0, "warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(save_tiny_decoder(tmp_path_factory.mktemp("tiny") / "student"))


@pytest.fixture
def data(tmp_path) -> dict[str, str]:
    examples = [StudentExample(f"{q.id}#0", student_input(q, PASSAGES[:1]), f" Teacher says {q.answer}.\nAnswer: {q.answer}",
                               "teacher", ("p1",), q.id) for q in (Q1, Q2)]
    write_examples(examples, tmp_path / "teacher.jsonl")
    store = AnnotationStore(tmp_path / "annotations.db", FAST)
    store.save(Correction(
        item_id="demo:q1", question_id="q1", question=Q1.text, options=dict(Q1.options), answer="A", gold_answer="A",
        rationale="Scurvy comes from too little vitamin C.", dataset="demo", student_model="tiny",
        passages=(PassageRecord("p1", "Scurvy", PASSAGES[0].text, 1, 2.0, used=True),
                  PassageRecord("p3", "Rickets", PASSAGES[2].text, 2, 1.0, used=True, mark="irrelevant")),
        original_rationale="Rickets.", student_answer="B", rating=1, curator="alice"))
    return {"examples": str(tmp_path / "teacher.jsonl"), "db": str(tmp_path / "annotations.db")}


def spec_for(root: Path, tiny: str, data: dict[str, str], **changes) -> retrain.RetrainSpec:
    spec = retrain.RetrainSpec(root=str(root), student=tiny, examples=data["examples"], db=data["db"],
                               correction_weight=2, training=TINY_TRAINING, nice=0)
    return replace(spec, **changes)


def weights(folder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_a_round_is_a_checkpoint_the_pipeline_loads(tmp_path, tiny, data):
    from kard.pipeline import Pipeline
    from kard.student import Student

    root = tmp_path / "rounds"
    updates: list[jobs.JobStatus] = []
    status = jobs.run_job(spec_for(root, tiny, data), on_update=updates.append)
    assert status.state == "succeeded", status.error
    assert status.round == "round-001" and round_folder.list_rounds(root) == ["round-001"]
    assert any(u.phase == "student" and u.step >= 1 and u.total_steps == 2 for u in updates)  # progress reported
    assert [u.total_steps for u in updates if u.state == "running"] == [2] * (len(updates) - 1)  # from the start
    assert list(dict.fromkeys(u.message for u in updates if u.step == 0)) == [  # named before the first step
        "preparing: starting the job", "preparing: exporting the saved corrections",
        "preparing: reading the teacher examples (teacher.jsonl)",
        f"preparing: loading the student {Path(tiny).parent.name}/student",
        "preparing: encoding 3 examples and setting up the training", "preparing: running the first training step"]
    manifest = round_folder.read_manifest(root, "round-001")
    assert manifest["parent"] == {"round": None, "student": tiny}
    assert manifest["data"] | {"examples_file": None} == {
        "examples_file": None, "base_examples": 2, "corrections": 1, "correction_weight": 2, "train_examples": 3,
        "replaced_base_examples": 1, "corrected_question_ids": ["q1"]}
    train = [json.loads(line) for line in (root / "round-001" / "train.jsonl").read_text().splitlines()]
    assert [e["id"] for e in train] == ["q2#0", "q1#curated-r1", "q1#curated-r1~1"]
    assert train[1]["passage_ids"] == ["p1"]  # the passage marked irrelevant is gone
    assert (root / "round-001" / "corrections" / "hf_dataset").is_dir()
    assert not (root / "round-001" / "student" / "checkpoints").exists()  # a round keeps no resume state
    paths = round_folder.round_paths(root)
    assert paths == {"round": "round-001", "student": str(root / "round-001" / "student"), "reranker": None}
    before, after = weights(tiny), weights(paths["student"])
    assert any(not (before[k] == after[k]).all() for k in before)  # the student learned something

    pipeline = Pipeline(KnowledgeBase.build(PASSAGES), Student.load(paths["student"]))
    from kard.config import GenerationConfig

    pipeline.generation = GenerationConfig(max_new_tokens=4)
    prediction = pipeline.answer(Q1)
    assert prediction.student_name and prediction.passages

    second = jobs.run_job(spec_for(root, tiny, data))
    assert second.state == "succeeded" and second.round == "round-002"
    assert round_folder.read_manifest(root, "round-002")["parent"] == {
        "round": "round-001", "student": str(root / "round-001" / "student")}
    assert round_folder.current(root)["round"] == "round-002"
    assert not any(p.name.startswith(".work-") for p in root.iterdir())


def test_two_jobs_on_one_folder_the_second_is_refused(tmp_path, tiny, data):
    root = tmp_path / "rounds"
    holder = round_folder.RoundsLock(root, "job-one").acquire()  # a job is running over this folder
    try:
        with pytest.raises(round_folder.RetrainBusyError, match=r"job job-one \(pid \d+.*already retraining.*Fix: wait"):
            jobs.run_job(spec_for(root, tiny, data))
        with pytest.raises(round_folder.RetrainBusyError, match="already retraining"):
            jobs.start_background(spec_for(root, tiny, data))
        assert jobs.list_jobs(root) == []  # nothing was started
    finally:
        holder.release()
    round_folder.check_free(root)  # free again once the job ends


def test_a_failed_job_keeps_the_current_student_and_says_why(tmp_path, tiny, data):
    root = tmp_path / "rounds"
    assert jobs.run_job(spec_for(root, tiny, data)).state == "succeeded"
    pointer = (root / "current.json").read_text()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "input": "no target"}\n')
    status = jobs.run_job(spec_for(root, tiny, data, examples=str(broken)))
    assert status.state == "failed"
    assert "broken.jsonl, line 1" in status.error and "missing field(s) target, source" in status.error
    assert (root / "current.json").read_text() == pointer and round_folder.list_rounds(root) == ["round-001"]
    assert (root / "failed" / status.job_id / "corrections").is_dir()  # kept for diagnosis
    assert jobs.read_status(root, status.job_id) == status
    round_folder.check_free(root)


def test_cancel_stops_the_job_and_changes_nothing(tmp_path, tiny, data):
    root = tmp_path / "rounds"

    def cancel_when_training(status: jobs.JobStatus) -> None:
        if status.phase == "student" and not (root / "jobs" / f"{status.job_id}.cancel").exists():
            jobs.cancel(root, status.job_id)

    status = jobs.run_job(spec_for(root, tiny, data), on_update=cancel_when_training)
    assert status.state == "cancelled" and "cancelled" in status.error
    assert round_folder.list_rounds(root) == [] and round_folder.current(root) is None
    with pytest.raises(round_folder.RetrainError, match="no retrain job is running"):
        jobs.cancel(root)


TINY_FLAGS = ["--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--set", "max_length_cap=128"]


def retrain_argv(root: Path, tiny: str, data: dict[str, str], *flags: str) -> list[str]:
    return ["retrain", "--root", str(root), "--student", tiny, "--examples", data["examples"], *TINY_FLAGS, *flags]


@pytest.mark.parametrize("kb_flags, problem", [
    ([], "retraining the reranker needs a knowledge base. Fix: pass --kb a passages file or index folder"),
    (["--kb", "no-such-kb"], "knowledge base no-such-kb not found. Fix: pass --kb an existing passages file"),
])
def test_a_reranker_retrain_without_its_knowledge_base_is_refused_before_it_starts(tmp_path, tiny, data, capsys,
                                                                                   kb_flags, problem):
    """It was refused only after the student had trained, throwing that training away."""
    from kard.__main__ import main

    root = tmp_path / "rounds"
    for mode in ([], ["--background"]):
        assert main(retrain_argv(root, tiny, data, "--db", data["db"], "--reranker", *kb_flags, *mode)) == 2
        assert problem in capsys.readouterr().err
        assert not root.exists()  # no job, no round, no folder


def test_a_reranker_retrain_without_the_annotation_store_is_refused_before_it_starts(tmp_path, tiny, data, capsys):
    from kard.__main__ import main

    passages = tmp_path / "passages.jsonl"
    passages.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n" for p in PASSAGES))
    assert main(retrain_argv(tmp_path / "rounds", tiny, data, "--reranker", "--kb", str(passages))) == 2
    assert "retraining the reranker needs the annotation store. Fix: pass --db" in capsys.readouterr().err


def test_a_reranker_job_without_a_knowledge_base_fails_before_the_student_trains(tmp_path, tiny, data):
    """A spec that came another way (not the CLI, not the app) is checked at the job's start."""
    root = tmp_path / "rounds"
    phases: list[str] = []
    status = jobs.run_job(spec_for(root, tiny, data, reranker=True), on_update=lambda s: phases.append(s.phase))
    assert status.state == "failed" and "needs a knowledge base. Fix: pass --kb" in status.error
    assert "student" not in phases and not (root / "failed" / status.job_id / "student").exists()


def test_ctrl_c_during_training_cancels_the_job_and_changes_nothing(tmp_path, tiny, data):
    """A KeyboardInterrupt escaped run_job: the status kept 'running', then read as a job that died unreported, and
    the work folder stayed in the rounds folder."""
    root = tmp_path / "rounds"
    assert jobs.run_job(spec_for(root, tiny, data)).state == "succeeded"
    pointer = (root / "current.json").read_text()

    def ctrl_c_in_training(status: jobs.JobStatus) -> None:
        if status.phase == "student" and status.step >= 1:  # called from the trainer's step callback
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # raised again once reported: the command decides how to exit
        jobs.run_job(spec_for(root, tiny, data), "job-ctrl-c", on_update=ctrl_c_in_training)
    status = jobs.read_status(root, "job-ctrl-c")
    assert (status.state, status.message) == ("cancelled", "cancelled; nothing changed")
    assert status.error == "job job-ctrl-c was interrupted (Ctrl+C)"
    assert (root / "current.json").read_text() == pointer and round_folder.list_rounds(root) == ["round-001"]
    assert not any(p.name.startswith(".work-") for p in root.iterdir())
    assert (root / "failed" / "job-ctrl-c" / "train.jsonl").is_file()  # kept as a failed job's is
    round_folder.check_free(root)


def test_ctrl_c_on_a_foreground_retrain_says_cancelled_in_one_line_and_exits_130(tmp_path, tiny, data):
    """SIGINT to a real `python -m kard retrain` while it trains."""
    root = tmp_path / "rounds"
    argv = retrain_argv(root, tiny, data)
    argv[argv.index("--max-steps") + 1] = "100000"  # still training when the signal comes
    process = popen_interruptible([sys.executable, "-m", "kard", *argv], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        status = wait_for(root, lambda s: s.phase == "student" and s.step >= 1, process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert out.splitlines()[-1] == (f"job {status.job_id} cancelled: interrupted (Ctrl+C); nothing changed, "
                                    "the current student keeps serving")
    final = jobs.read_status(root, status.job_id)
    assert final.state == "cancelled" and "interrupted (Ctrl+C)" in final.error
    assert not (root / "current.json").exists() and round_folder.list_rounds(root) == []
    assert not any(p.name.startswith(".work-") for p in root.iterdir())
    assert (root / "failed" / status.job_id).is_dir()
    round_folder.check_free(root)


def wait_for(root: Path, condition: Callable[[jobs.JobStatus], bool], process: subprocess.Popen | None = None,
             timeout_s: float = 240.0) -> jobs.JobStatus:
    """The first job of `root` once `condition(status)` holds (fails if `process` ends first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = jobs.list_jobs(root)
        if found and condition(found[0]):
            return found[0]
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no job of {root} reached the state within {timeout_s} s: {jobs.list_jobs(root)}")


def test_a_second_retrain_is_refused_while_a_background_one_starts(tmp_path, tiny, data, capsys):
    """The background job took the folder's lock only once its process had started: a second job started meanwhile
    was told "started" too, then failed in its process and read as killed ("killed, or out of memory?")."""
    from kard.__main__ import main

    root = tmp_path / "rounds"
    try:
        assert main(retrain_argv(root, tiny, data, "--background")) == 0
        started = capsys.readouterr().out
        for second in (["--background"], []):  # another background job, or one in the foreground
            assert main(retrain_argv(root, tiny, data, *second)) == 2
            assert "is already retraining over" in capsys.readouterr().err
        [job] = jobs.list_jobs(root)  # no record of the refused ones
        assert f"started job {job.job_id}" in started
        with pytest.raises(round_folder.RetrainBusyError):
            round_folder.check_free(root)  # the job process holds the lock, not this one
        assert main(["retrain", "--root", str(root), "--cancel"]) == 0  # at once: the job is still starting up
        assert capsys.readouterr().out == f"asked job {job.job_id} to stop (state: queued)\n"
        final = wait_for(root, lambda s: s.finished and not process_alive(s.pid))
        assert final.state == "cancelled" and final.message == "cancelled; nothing changed", final
        assert round_folder.list_rounds(root) == [] and round_folder.current(root) is None
        round_folder.check_free(root)  # the kernel freed the lock with the job process
    finally:
        kill_job_processes(root)  # when an assertion failed with a job still running


def process_alive(pid: int | None) -> bool:
    try:
        os.kill(pid or 0, 0)
    except ProcessLookupError:
        return False
    return bool(pid)


def kill_job_processes(root: Path) -> None:
    for pid in {s.pid for s in jobs.list_jobs(root) if s.pid and s.pid != os.getpid()}:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_a_job_that_ended_unreported_after_a_cancel_reads_as_cancelled(tmp_path):
    """SIGTERM can end a job still starting up, before it has written a word."""
    (tmp_path / "jobs").mkdir()
    for job_id, state in (("job-c", "queued"), ("job-f", "running")):
        dead = jobs.JobStatus(job_id, state, pid=2 ** 22 + 12345, started_at="t", updated_at="t")
        (tmp_path / "jobs" / f"{job_id}.json").write_text(json.dumps(asdict(dead)))
    (tmp_path / "jobs" / "job-c.cancel").write_text("t")
    cancelled = jobs.read_status(tmp_path, "job-c")
    assert (cancelled.state, cancelled.message) == ("cancelled", "cancelled; nothing changed")
    failed = jobs.read_status(tmp_path, "job-f")  # a foreground job: it has no log file to point at
    assert failed.state == "failed" and "job-f.log" not in failed.error
    assert "Fix: see the output of the command that ran it" in failed.error


def test_a_job_whose_process_died_reads_as_failed(tmp_path):
    dead = jobs.JobStatus("job-x", "running", "student", pid=2 ** 22 + 12345, started_at="t", updated_at="t")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job-x.json").write_text(json.dumps(asdict(dead)))
    status = jobs.read_status(tmp_path, "job-x")
    assert status.state == "failed" and "exited without reporting" in status.error


def test_background_job_runs_in_its_own_process(tmp_path, tiny, data):
    root = tmp_path / "rounds"
    job = jobs.start_background(spec_for(root, tiny, data, training={**TINY_TRAINING, "max_steps": 1}))
    assert job.pid != os.getpid()
    assert jobs.read_status(root, job.job_id).total_steps == 1  # the total is shown from the start
    status = job.wait(timeout_s=240, poll_s=0.5)
    assert status.state == "succeeded", job.log_path.read_text()[-2000:]
    assert status.pid == job.pid and round_folder.current(root)["round"] == "round-001"
    assert [s.job_id for s in jobs.list_jobs(root)] == [job.job_id]


def test_cli_export_retrain_status(tmp_path, tiny, data, capsys):
    from kard.__main__ import main

    assert main(["export", "--db", data["db"], "--out", str(tmp_path / "export")]) == 0
    assert "exported 1 correction(s)" in capsys.readouterr().out
    root = tmp_path / "rounds"
    args = ["retrain", "--root", str(root), "--student", tiny, "--corrections", str(tmp_path / "export"),
            "--max-steps", "1", "--batch-size", "1", "--set", "grad_accum=1", "--set", "save_steps=0",
            "--set", "max_length_cap=192"]
    assert main(args) == 0
    assert "round round-001 is now current" in capsys.readouterr().out
    assert main(["retrain", "--root", str(root), "--status"]) == 0
    assert "current: round-001" in capsys.readouterr().out
    assert main(["retrain", "--root", str(root), "--student", tiny]) == 2
    assert "nothing to train on" in capsys.readouterr().err


def cli_spec(tmp_path: Path, data: dict[str, str], *flags: str) -> retrain.RetrainSpec:
    """The spec `python -m kard retrain` would run with these flags (nothing trains)."""
    from kard.__main__ import build_parser
    from kard.cli.loop import spec_from_args

    argv = ["retrain", "--root", str(tmp_path / "rounds"), "--examples", data["examples"], *flags]
    return spec_from_args(build_parser().parse_args(argv))


def test_the_cli_retrains_as_the_app_does_by_default(tmp_path, data):
    """Before, the CLI fine-tuned the whole model (over 500 MB a round) where the app trains a 20 MB adapter."""
    from kard.config import StudentTrainingConfig

    assert cli_spec(tmp_path, data).training == APP_TRAINING
    assert cli_spec(tmp_path, data, "--max-steps", "5").training == {**APP_TRAINING, "max_steps": 5}
    assert cli_spec(tmp_path, data, "--lora").training == APP_TRAINING
    config = retrain.student_training_config(cli_spec(tmp_path, data).training)
    assert (config.lora, config.merge_lora, config.learning_rate) == (True, False, APP_TRAINING["learning_rate"])
    assert config.learning_rate != StudentTrainingConfig.learning_rate
    assert cli_spec(tmp_path, data, "--learning-rate", "0.003").training["learning_rate"] == 0.003


def test_no_lora_gives_the_full_fine_tune_at_its_own_defaults(tmp_path, data):
    from kard.config import StudentTrainingConfig

    for flags in (["--no-lora"], ["--set", "lora=false"]):
        training = cli_spec(tmp_path, data, *flags, "--max-steps", "5").training
        assert training == {"lora": False, "max_steps": 5}
        assert retrain.student_training_config(training) == replace(StudentTrainingConfig(), max_steps=5)
    training = cli_spec(tmp_path, data, "--no-lora", "--learning-rate", "0.003").training
    assert training == {"lora": False, "learning_rate": 0.003}


def test_the_retrain_help_says_which_is_default_and_what_each_costs_on_disk(capsys):
    from kard.__main__ import main

    with pytest.raises(SystemExit):
        main(["retrain", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--lora, --no-lora" in help_text and "--lora (default, as the app's Retrain tab)" in help_text
    assert "about 20 MB" in help_text and "over 500 MB" in help_text


def test_a_cli_retrain_by_default_writes_a_small_adapter(tmp_path, tiny, data, capsys):
    from kard.__main__ import main
    from kard.student import Student

    root = tmp_path / "rounds"
    argv = ["retrain", "--root", str(root), "--student", tiny, "--examples", data["examples"], "--max-steps", "1",
            "--batch-size", "1", "--set", "grad_accum=1", "--set", "save_steps=0", "--set", "max_length_cap=192"]
    assert main(argv) == 0, capsys.readouterr()
    student = root / "round-001" / "student"
    assert (student / "adapter_config.json").is_file() and not (student / "model.safetensors").exists()
    assert round_folder.read_manifest(root, "round-001")["spec"]["training"]["lora"] is True
    assert Student.load(student).sources == (str(student), tiny)


def test_app_panel_starts_jobs_and_compares_two_rounds(tmp_path, tiny, data):
    from kard.pipeline import Pipeline
    from kard.config import GenerationConfig
    from kard.student import Student

    root = tmp_path / "rounds"
    assert jobs.run_job(spec_for(root, tiny, data)).state == "succeeded"
    kb = KnowledgeBase.build(PASSAGES)
    studio = Studio(lambda: Pipeline(kb, Student.load(tiny), generation=GenerationConfig(max_new_tokens=4)),
                    AnnotationStore(data["db"], FAST), [Q1], mode="curator")
    started: list[retrain.RetrainSpec] = []
    panel = LoopPanel(studio, root, base_student=tiny, db=data["db"], examples=data["examples"],
                      launcher=lambda spec: started.append(spec) or type("J", (), {"job_id": "job-7"})())
    assert panel.round_choices() == [("base", "base"), ("round-001 (current)", "round-001")]
    assert panel.student_path("base") == tiny
    assert "job-7" in panel.start("", 2, 5, False, "", "alice")
    assert (started[0].db, started[0].examples) == (data["db"], data["examples"])
    assert started[0].training == {**APP_TRAINING, "max_steps": 5}
    with pytest.raises(InputError, match="Sign in"):
        panel.start("", 2, 5, False, "", None)
    html = panel.status_html()
    assert "Serving: <b>round-001</b>" in html and "succeeded" in html
    left, right, diff = panel.compare(Q1.text, "A) Vitamin C\nB) Vitamin D", "q1", "base", "round-001")
    assert ">base</h3>" in left and ">round-001</h3>" in right
    assert "round-001/student" in right and "kard-badge" in left and "kard-badge" in right
    assert "kard-diff" in diff
    every = panel.every_round(Q1.text, "A) Vitamin C\nB) Vitamin D", "q1")
    assert every.count("<tr><td><b>") == 2 and "<b>base</b>" in every and "<b>round-001</b>" in every
    assert "No round report yet" in panel.report_markdown() and panel.report_plot() is None
    from kard.loop.rounds import round_report, write_report

    write_report(round_report({"round-000": ("b", {"q2": "A"}), "round-001": ("r", {"q2": "B"})}, {"q2": "B"}),
                 root / "report")
    assert "| round-001 | 100.0%" in panel.report_markdown() and panel.report_plot().endswith("accuracy.png")


def test_a_round_reads_yes_no_and_open_corrections_as_they_were_asked(tmp_path, tiny, data):
    from kard.reranker.training import build_reranker_items

    store = AnnotationStore(data["db"], FAST)
    base = dict(question_id="custom", dataset="custom", student_model="tiny", curator="alice",
                passages=(PassageRecord("p1", "Scurvy", PASSAGES[0].text, 1, 2.0, used=True),))
    store.save(Correction(item_id="custom:yn", question="Does a lack of vitamin C cause scurvy?", kind="yesno",
                          options={"A": "yes", "B": "no"}, answer="A", rationale="Scurvy is vitamin C deficiency.",
                          **base))
    store.save(Correction(item_id="custom:open", question="What does a lack of vitamin C cause?", kind="open",
                          options={}, answer="scurvy", rationale="Scurvy is vitamin C deficiency.", **base))
    work = tmp_path / "work"
    examples, revisions, _ = retrain._corrections(spec_for(tmp_path / "loop", tiny, data), work)
    targets = {e.input.split("Question: ")[1].split("\n")[0]: e.target for e in examples}
    assert targets["What does a lack of vitamin C cause?"] == " Scurvy is vitamin C deficiency.\nAnswer: scurvy"
    assert targets["Does a lack of vitamin C cause scurvy?"] == " Scurvy is vitamin C deficiency.\nAnswer: A"
    assert len({e.id for e in examples}) == 3  # two typed questions never share an example id
    assert [(r.item_id, r.correction.kind) for r in revisions] == [
        ("custom:open", "open"), ("custom:yn", "yesno"), ("demo:q1", "choice")]
    pairs = [(r.correction.to_question(), r.correction.rationale) for r in revisions]
    items = build_reranker_items(pairs, KnowledgeBase.build(PASSAGES), candidates=2)
    assert [i.query for i in items[:2]] == ["What does a lack of vitamin C cause?",
                                            "Does a lack of vitamin C cause scurvy?"]  # no options in the query


def test_rounds_command_compares_each_round_with_its_control(tmp_path, tiny, data, capsys):
    """`kard rounds --control`: the corrections arm and a control arm trained the same way without them."""
    from kard.__main__ import main

    corrected, control = tmp_path / "corrections", tmp_path / "control"
    assert jobs.run_job(spec_for(corrected, tiny, data)).state == "succeeded"
    assert jobs.run_job(spec_for(control, tiny, data, db=None)).state == "succeeded"
    questions = tmp_path / "heldout.jsonl"
    questions.write_text("".join(json.dumps({"id": q.id, "question": q.text, "options": dict(q.options),
                                             "answer": q.answer}) + "\n" for q in (Q1, Q2)))
    passages = tmp_path / "passages.jsonl"
    passages.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n" for p in PASSAGES))
    assert main(["rounds", "--root", str(corrected), "--control", str(control), "--questions", str(questions),
                 "--kb", str(passages), "--max-new-tokens", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "left out 1 question(s) used as corrections" in out  # q1 was corrected: only q2 is held out
    report = json.loads((corrected / "report" / "report.json").read_text())
    assert [c["round"] for c in report["controls"]] == ["round-001"] and report["questions"] == 1
    assert "| round-001 |" in out and "p = " in out


def test_passage_marks_alone_train_the_reranker(tmp_path, tiny, data):
    """A correction that only marks passages (rationale unchanged, rated low: no student example) still
    reaches the reranker, and its marks override BM25's targets; a rejected one reaches nothing."""
    from kard.reranker.training import build_reranker_items

    store = AnnotationStore(data["db"], FAST)
    unchanged = "Scurvy is about vitamin C."  # the student's off-topic rationale: BM25 with it favours p1
    marks_only = dict(question_id="q2", question=Q2.text, options=dict(Q2.options), answer="A", gold_answer="B",
                      rationale=unchanged, original_rationale=unchanged, student_answer="A", rating=1,
                      dataset="demo", student_model="tiny", curator="alice",
                      passages=(PassageRecord("p2", "Plants", PASSAGES[1].text, 2, 1.0, mark="relevant"),
                                PassageRecord("p1", "Scurvy", PASSAGES[0].text, 1, 2.0, used=True, mark="irrelevant")))
    store.save(Correction(item_id="demo:q2", **marks_only))
    store.save(Correction(item_id="demo:q2-rejected", note="reject: off topic", **marks_only))
    examples, revisions, _ = retrain._corrections(spec_for(tmp_path / "loop", tiny, data), tmp_path / "work")
    assert {e.question_id for e in examples} == {"q1"}  # the marks-only item trains no student example
    assert [r.item_id for r in revisions] == ["demo:q1", "demo:q2"]  # ... but the reranker reads it
    pairs = [(r.correction.to_question(), r.correction.rationale) for r in revisions]
    marks = [{p.id: p.mark for p in r.correction.passages if p.mark} for r in revisions]
    plain, marked = (build_reranker_items(pairs, KnowledgeBase.build(PASSAGES), candidates=2, marks=m)
                     for m in ([{}, {}], marks))
    q2_plain, q2 = plain[1], marked[1]
    assert q2_plain.targets["p1"] == max(q2_plain.targets.values()) > q2_plain.targets.get("p2", 0.0)
    assert q2.targets["p2"] == max(q2.targets.values()) and "p2" in q2.rationale_ids
    assert q2.targets["p1"] == 0.0 and "p1" in q2.question_ids and "p1" not in q2.rationale_ids
    assert marked[0].targets["p3"] == 0.0  # q1's 'irrelevant' mark on rickets


@pytest.mark.parametrize("damaged, content, problem", [
    ("current.json", "{bad", "the file is not valid JSON"),
    ("current.json", "[]", "the file holds a JSON list, not an object"),
    ("jobs/job-x.json", "{bad", "the file is not valid JSON"),
    ("jobs/job-x.json", "{}", "the job status lacks job_id, state"),
])
def test_a_damaged_state_file_is_named_with_a_fix(tmp_path, capsys, damaged, content, problem):
    from kard.__main__ import main

    root = tmp_path / "rounds"
    (root / "jobs").mkdir(parents=True)
    (root / damaged).write_text(content)
    assert main(["retrain", "--root", str(root), "--status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / damaged}: {problem}") and "Fix: " in err


def test_a_job_over_a_damaged_pointer_fails_naming_it(tmp_path, tiny, data, capsys):
    from kard.__main__ import main

    root = tmp_path / "rounds"
    root.mkdir()
    (root / "current.json").write_text("{bad")
    status = jobs.run_job(spec_for(root, tiny, data))
    assert status.state == "failed" and str(root / "current.json") in status.error and "Fix: " in status.error
    assert main(["retrain", "--root", str(root), "--student", tiny, "--examples", data["examples"]]) == 2
    assert "current.json: the file is not valid JSON" in capsys.readouterr().err


def test_the_apps_rounds_are_small_adapters_that_chain(tmp_path, tiny, data):
    """The app's Retrain keeps each round's LoRA adapter unmerged: round 2 is an adapter on round 1, which is one on
    the base; each loads, merged in order, and the folder holds no full copy of the model."""
    from kard.student import Student

    root = tmp_path / "rounds"
    training = {**TINY_TRAINING, **APP_TRAINING}
    for _ in range(2):
        assert jobs.run_job(spec_for(root, tiny, data, training=training)).state == "succeeded"
    second = root / "round-002" / "student"
    assert (second / "adapter_config.json").is_file() and not (second / "model.safetensors").exists()
    base = json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert (second / base).resolve() == (root / "round-001" / "student").resolve()
    assert Student.load(second).sources == (str(second), str(root / "round-001" / "student"), tiny)


def test_a_save_during_a_retrain_reaches_the_student_and_the_reranker_alike(tmp_path, tiny, data, monkeypatch):
    """The retrain read the store twice (its export for the student's examples, then the latest revisions for the
    reranker): a save landing between the two trained the reranker on a newer revision than the student."""
    real_latest = AnnotationStore.latest

    def latest_then_a_save(self):
        revisions = real_latest(self)
        newer = replace(revisions[0].correction, rationale="A later save: vitamin C deficiency causes scurvy.")
        AnnotationStore(data["db"], FAST).save(newer)  # a curator saves just after the retrain has read
        return revisions

    monkeypatch.setattr(AnnotationStore, "latest", latest_then_a_save)
    examples, revisions, _ = retrain._corrections(spec_for(tmp_path / "loop", tiny, data), tmp_path / "work")
    student = next(e for e in examples if e.question_id == "q1")
    reranker = next(r for r in revisions if r.item_id == "demo:q1")
    assert reranker.correction.rationale in student.target  # the same revision of demo:q1 for both

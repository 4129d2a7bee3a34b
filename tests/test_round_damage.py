"""A rounds folder someone damaged: a deleted round (the serving one, or one a later round is built on), a stray
round folder without a manifest, a store with no usable correction, a job killed or cancelled in the foreground,
missing teacher examples. Each is named with its fix before anything trains, and the rounds that still load keep
answering and reporting."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kard.annotations import AnnotationStore, Correction
from kard.config import AppConfig
from kard.errors import KardError
from kard.loop import jobs, retrain, round_folder
from kard.ui.loop_tab import APP_TRAINING, LoopPanel
from kard.ui.studio import Studio
from tests.test_retrain import FAST, PASSAGES, Q1, Q2, TINY_TRAINING, spec_for
from tests.tiny_models import save_tiny_decoder

OPTIONS = "A) Vitamin C\nB) Vitamin D"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(save_tiny_decoder(tmp_path_factory.mktemp("tiny") / "student"))


def make_data(folder: Path) -> dict[str, str]:
    """tests/test_retrain.py's data: teacher examples of Q1 and Q2, a store with one accepted correction of Q1."""
    from kard.annotations import PassageRecord
    from kard.distill import StudentExample, write_examples
    from kard.prompts import student_input

    write_examples([StudentExample(f"{q.id}#0", student_input(q, PASSAGES[:1]), f" Teacher says {q.answer}.\n"
                                   f"Answer: {q.answer}", "teacher", ("p1",), q.id) for q in (Q1, Q2)],
                   folder / "teacher.jsonl")
    AnnotationStore(folder / "annotations.db", FAST).save(Correction(
        item_id="demo:q1", question_id="q1", question=Q1.text, options=dict(Q1.options), answer="A", gold_answer="A",
        rationale="Scurvy comes from too little vitamin C.", dataset="demo", student_model="tiny",
        passages=(PassageRecord("p1", "Scurvy", PASSAGES[0].text, 1, 2.0, used=True),),
        original_rationale="Rickets.", student_answer="B", rating=1, curator="alice"))
    return {"examples": str(folder / "teacher.jsonl"), "db": str(folder / "annotations.db")}


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny) -> dict[str, str]:
    """Two chained LoRA rounds (the app's way), trained once for the module; each test copies them."""
    folder = tmp_path_factory.mktemp("made")
    data = make_data(folder)
    root = folder / "rounds"
    for _ in range(2):
        status = jobs.run_job(spec_for(root, tiny, data, training={**TINY_TRAINING, **APP_TRAINING}))
        assert status.state == "succeeded", status.error
    return {**data, "rounds": str(root)}


@pytest.fixture
def rounds(made, tmp_path) -> Path:
    root = tmp_path / "rounds"
    shutil.copytree(made["rounds"], root)
    return root


def panel_over(root: Path, tiny: str, made: dict[str, str], serving=None) -> LoopPanel:
    from kard.config import GenerationConfig
    from kard.knowledge import KnowledgeBase
    from kard.pipeline import Pipeline
    from kard.student import Student

    kb = KnowledgeBase.build(PASSAGES)
    studio = Studio(lambda: Pipeline(kb, Student.load(tiny), generation=GenerationConfig(max_new_tokens=4)),
                    AnnotationStore(made["db"], FAST), [Q1], mode="curator", serving=serving)
    return LoopPanel(studio, root, base_student=tiny, db=made["db"], examples=made["examples"],
                     launcher=lambda spec: pytest.fail("a job was started"))


# ---------------------------------------------------------------- a round another one is built on is gone


def test_a_deleted_round_names_the_round_built_on_it(rounds):
    shutil.rmtree(rounds / "round-001")
    problem = round_folder.round_problem(rounds, "round-002")
    assert problem is not None and problem.round == "round-002" and problem.missing == "round-001"
    assert "round-002 cannot load: it is built on round-001" in str(problem)
    assert "restore round-001" in str(problem) and "--from-base" in str(problem)
    assert str(rounds) not in problem.page and "round-001's folder is missing" in problem.page
    assert round_folder.round_problem(rounds, "round-001") is not None  # listed no more, but said if asked


def test_a_deleted_student_folder_is_named_too_and_the_loader_names_the_adapters_base(rounds):
    from kard.errors import ModelNotFoundError
    from kard.student import Student

    shutil.rmtree(rounds / "round-001" / "student")
    assert "round-001's student folder is missing" in round_folder.round_problem(rounds, "round-001").page
    assert "the student folder round-001/student is missing" in str(round_folder.round_problem(rounds, "round-002"))
    with pytest.raises(ModelNotFoundError) as raised:
        Student.load(rounds / "round-002" / "student")
    assert str(rounds / "round-001" / "student") in str(raised.value) and "../" not in str(raised.value)
    assert "demo/student" not in str(raised.value)  # the shipped student is no fix for a missing base


def test_the_app_serves_the_configured_student_and_the_tab_says_why(rounds, tiny, made, caplog):
    import app

    shutil.rmtree(rounds / "round-001")
    serving = app.serving_round(AppConfig(mode="curator", rounds_dir=rounds))
    with caplog.at_level(logging.WARNING, logger="kard.app"):
        assert serving() is None  # at start: the configured student answers
    assert "round-002 cannot load: it is built on round-001" in caplog.text
    panel = panel_over(rounds, tiny, made, serving)
    html = panel.status_html()
    assert "Serving: <b>base</b>" in html and "Serving: <b>round-002</b>" not in html
    assert "round-002 cannot load: it is built on round-001" in html and "configured student (base) answers" in html
    assert str(rounds) not in html
    assert panel.serving_round() == "base" and ("round-002 (current)", "round-002") not in panel.round_choices()


def test_answer_with_every_round_shows_the_rounds_that_load_and_a_row_for_the_broken_one(rounds, tiny, made):
    shutil.rmtree(rounds / "round-001")
    panel = panel_over(rounds, tiny, made)
    assert panel.student_path("base") == tiny  # round-000 is still the chain's start, not the deleted round
    every = panel.every_round(Q1.text, OPTIONS, "q1")
    assert "<b>base</b>" in every and "kard-badge" in every  # base still answers
    assert "<b>round-002</b>" in every and "it is built on round-001" in every and "kard-msg-error" in every
    assert str(rounds) not in every
    with pytest.raises(KardError, match="round-002 cannot load: it is built on round-001"):
        panel.compare(Q1.text, OPTIONS, "q1", "base", "round-002")


def test_a_retrain_over_a_broken_serving_round_is_refused_before_it_starts(rounds, tiny, made, capsys):
    from kard.__main__ import main

    shutil.rmtree(rounds / "round-001" / "student")
    argv = ["retrain", "--root", str(rounds), "--student", tiny, "--examples", made["examples"], "--db", made["db"]]
    assert main(argv) == 2
    assert "round-002 cannot load: it is built on round-001" in capsys.readouterr().err
    status = jobs.run_job(spec_for(rounds, tiny, made))  # a spec that came another way fails before it trains
    assert status.state == "failed" and "built on round-001" in status.error
    assert not list(rounds.glob(".work-*")) and not (rounds / "failed").exists()
    with pytest.raises(KardError, match="built on round-001") as raised:
        panel_over(rounds, tiny, made).start("", 2, 1, False, "", "alice")
    assert str(rounds) not in raised.value.page


def test_the_rounds_report_keeps_the_rounds_that_load_and_a_row_for_the_broken_one(rounds, tiny, made, tmp_path):
    from kard.config import GenerationConfig
    from kard.knowledge import KnowledgeBase
    from kard.loop.rounds import evaluate_rounds, report_markdown, round_report

    shutil.rmtree(rounds / "round-001")
    failed: dict[str, str] = {}
    answers = evaluate_rounds(rounds, [Q2], knowledge=KnowledgeBase.build(PASSAGES), progress=False,
                              generation=GenerationConfig(max_new_tokens=4), failed=failed)
    assert list(answers) == ["round-000"] and answers["round-000"][0] == tiny
    assert list(failed) == ["round-002"] and "built on round-001" in failed["round-002"]
    report = round_report(answers, {"q2": "B"}, failed=failed)
    text = report_markdown(report)
    assert "| round-000 |" in text and "| round-002 | could not be evaluated: round-002 cannot load" in text
    assert report.to_dict()["failed"][0]["round"] == "round-002" and str(rounds) not in text


# ---------------------------------------------------------------- the serving round's folder is gone


def test_a_deleted_serving_round_is_said_on_the_tab_in_status_and_a_retrain_is_refused(rounds, tiny, made, capsys):
    from kard.__main__ import main

    shutil.rmtree(rounds / "round-002")
    assert main(["retrain", "--root", str(rounds), "--status"]) == 0
    out = capsys.readouterr().out
    assert "current: round-002" in out and "warning: " in out and "round-002 is missing" in out
    argv = ["retrain", "--root", str(rounds), "--student", tiny, "--examples", made["examples"], "--db", made["db"]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "current.json names round-002 as the serving round" in err and "--from-base" in err
    assert sorted(p.name for p in (rounds / "jobs").glob("*.json")) == sorted(
        p.name for p in (Path(made["rounds"]) / "jobs").glob("*.json"))  # no job was started
    html = panel_over(rounds, tiny, made).status_html()
    assert "Serving: <b>base</b>" in html and "round-002 cannot load: round-002&#x27;s folder is missing" in html
    assert "configured student (base) answers" in html and str(rounds) not in html
    assert f"Serving: <b>base</b> ({Path(tiny).name})" in html and tiny not in html  # no folder of this machine


# ---------------------------------------------------------------- a stray round folder


def test_a_round_folder_without_a_manifest_is_skipped_not_written_into(rounds, tiny, made, caplog):
    (rounds / "round-003" / "student").mkdir(parents=True)
    (rounds / "round-003" / "student" / "x").write_text("junk")
    with caplog.at_level(logging.WARNING, logger="kard.loop.round_folder"):
        assert round_folder.next_round_number(rounds) == 4
    assert "skipping round-003" in caplog.text
    status = jobs.run_job(spec_for(rounds, tiny, made, training={**TINY_TRAINING, **APP_TRAINING}))
    assert status.state == "succeeded" and status.round == "round-004", status.error
    assert (rounds / "round-003" / "student" / "x").read_text() == "junk"


def test_publishing_over_an_existing_folder_is_refused_naming_it(tmp_path):
    work, taken = tmp_path / ".work-x", tmp_path / "round-001"
    work.mkdir()
    (taken / "student").mkdir(parents=True)
    with pytest.raises(round_folder.RetrainError, match="round-001 appeared while the job trained"):
        round_folder.publish_round(tmp_path, work, {"round": "round-001"})
    assert work.is_dir() and not (tmp_path / "current.json").exists()


# ---------------------------------------------------------------- no usable correction


@pytest.fixture
def rejected_only(tmp_path) -> str:
    store = AnnotationStore(tmp_path / "bad.db", FAST)
    store.save(Correction(item_id="demo:q2", question_id="q2", question=Q2.text, options=dict(Q2.options), answer="A",
                          gold_answer="B", rationale="Plants absorb oxygen. Answer: A", dataset="demo",
                          student_model="tiny", passages=(), original_rationale="x", student_answer="A", rating=3,
                          curator="alice", note="reject: wrong"))
    return str(tmp_path / "bad.db")


def test_a_retrain_with_no_usable_correction_is_refused_saying_why(tmp_path, tiny, made, rejected_only, capsys):
    from kard.__main__ import main

    root = tmp_path / "zero"
    argv = ["retrain", "--root", str(root), "--student", tiny, "--examples", made["examples"], "--db", rejected_only]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no usable correction" in err and "demo:q2: rejected" in err and "control run" in err
    assert not (root / "jobs").exists()
    status = jobs.run_job(spec_for(root, tiny, made, db=rejected_only))
    assert status.state == "failed" and "no usable correction" in status.error
    assert round_folder.list_rounds(root) == [] and not (root / "current.json").exists()
    panel = LoopPanel(Studio(lambda: None, AnnotationStore(rejected_only, FAST), mode="curator"), tmp_path / "app",
                      base_student=tiny, db=rejected_only, launcher=lambda spec: pytest.fail("started"))
    with pytest.raises(KardError) as raised:
        panel.start(made["examples"], 2, 1, False, "", "alice")
    assert "No usable correction" in raised.value.page and "rejected" in raised.value.page


def test_a_control_run_without_corrections_still_trains(tmp_path, tiny, made):
    """The controlled experiment's control arm (benchmarks/loop_experiment.py) retrains on examples alone."""
    status = jobs.run_job(spec_for(tmp_path / "control", tiny, made, db=None))
    assert status.state == "succeeded", status.error


# ---------------------------------------------------------------- missing teacher examples


def test_missing_teacher_examples_are_refused_before_the_job_starts(tmp_path, tiny, made, capsys):
    from kard.__main__ import main

    root = tmp_path / "r"
    argv = ["retrain", "--root", str(root), "--student", tiny, "--examples", str(tmp_path / "nope.jsonl"),
            "--db", made["db"], "--background"]
    assert main(argv) == 2
    assert "teacher examples" in capsys.readouterr().err and not (root / "jobs").exists()
    panel = LoopPanel(Studio(lambda: None, AnnotationStore(made["db"], FAST), mode="curator"), root, base_student=tiny,
                      db=made["db"], launcher=lambda spec: pytest.fail("started"))
    with pytest.raises(KardError, match="teacher examples .*nope.jsonl not found. Fix: fill in 'Teacher examples'"):
        panel.start(str(tmp_path / "nope.jsonl"), 2, 1, False, "", "alice")


# ---------------------------------------------------------------- cancel and kill


def test_cancel_stops_a_foreground_retrain_with_one_line_and_keeps_its_work(tmp_path, tiny, made):
    root = tmp_path / "fg"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "kard", "retrain", "--root", str(root), "--student", tiny, "--examples",
               made["examples"], "--db", made["db"], "--max-steps", "5000", "--batch-size", "1", "--grad-accum", "1",
               "--set", "max_length_cap=128"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            found = list((root / "jobs").glob("*.json")) if (root / "jobs").is_dir() else []
            if found and json.loads(found[0].read_text()).get("step", 0) >= 1:
                break
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.5)
        jobs.cancel(root)
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, out
    job_id = found[0].stem
    said = [line for line in out.splitlines() if line.startswith("job ")]  # stderr (library warnings) comes too
    line = f"job {job_id} cancelled: asked to stop (SIGTERM); nothing changed, the current student keeps serving"
    assert said == [line] and "Traceback" not in out, out
    assert not list(root.glob(".work-*")) and (root / "failed" / job_id).is_dir()
    assert jobs.read_status(root, job_id).state == "cancelled"


def test_a_killed_jobs_work_folder_is_named_in_status_and_removed_by_the_next_retrain(tmp_path, tiny, capsys):
    from kard.__main__ import main

    root = tmp_path / "k9"
    (root / ".work-20260101-000000-abcdef" / "student").mkdir(parents=True)
    round_folder.write_json_atomic(jobs.status_path(root, "20260101-000000-abcdef"), {
        "job_id": "20260101-000000-abcdef", "state": "running", "pid": 2 ** 22 + 17})  # no such process
    assert main(["retrain", "--root", str(root), "--status"]) == 0
    assert "stale work folder .work-20260101-000000-abcdef" in capsys.readouterr().out
    status = jobs.run_job(retrain.RetrainSpec(root=str(root), student=tiny))  # fails fast: nothing to train on
    assert status.state == "failed"
    assert not list(root.glob(".work-*"))


# ---------------------------------------------------------------- the report


def test_a_round_retrained_under_the_same_name_is_evaluated_again(tmp_path, tiny, caplog):
    from kard.evaluation import settings_path
    from kard.loop.rounds import _drop_replaced_answers
    from kard.student import Student

    out = tmp_path / "eval" / "round-002-kard-bm25.jsonl"
    out.parent.mkdir()
    out.write_text('{"question_id": "q1"}\n')
    settings_path(out).write_text(json.dumps({"student_weights": "the old round's"}))
    with caplog.at_level(logging.WARNING, logger="kard.loop.rounds"):
        _drop_replaced_answers(out, "round-002", Student.load(tiny))
    assert not out.exists() and not settings_path(out).exists()
    assert "round-002" in caplog.text and "old answers were replaced" in caplog.text


def test_a_control_with_fewer_rounds_is_noted_in_the_report():
    from kard.loop.rounds import report_markdown, round_report

    gold = {"q1": "A"}
    answers = {name: ("s", {"q1": "A"}) for name in ("round-000", "round-001", "round-002")}
    control = {name: ("c", {"q1": "B"}) for name in ("round-000", "round-001")}
    report = round_report(answers, gold, control)
    assert [c.round for c in report.controls] == ["round-001"]
    assert any("control has no round-002" in note for note in report.to_dict()["notes"])
    assert "Note: control has no round-002" in report_markdown(report)
    assert not round_report(answers, gold, answers).notes


def test_the_progress_line_names_the_phase_once(capsys):
    from kard.cli.loop import _printer

    _printer()(jobs.JobStatus("j", "running", "student", step=2, total_steps=2, message="student: step 2/2"))
    assert capsys.readouterr().out.strip() == "[running] student: step 2/2"

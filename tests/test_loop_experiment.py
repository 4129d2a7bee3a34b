"""benchmarks/loop_experiment.py's two kinds of saved items reach training: the scripted curator's
corrections and the placebo arm's unchanged student rationales. If the export's rules dropped either,
that arm would silently train like the control."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from kard.annotations import AnnotationStore
from kard.evaluation import EvalRecord
from kard.knowledge import KnowledgeBase
from kard.loop.export import build_curated
from kard.records import Passage, Question

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("loop_experiment", ROOT / "benchmarks" / "loop_experiment.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def wrong_answer(question: Question) -> EvalRecord:
    return EvalRecord(question.id, "kard-bm25", question.answer, "B", False,
                      "Plants make food from light. So the answer is oxygen.", ("B",), {"B": 1}, ("p1",), 12, 0.1)


def test_corrections_and_placebo_items_are_both_exported(tmp_path):
    script = load_script()
    kb = KnowledgeBase.build([Passage("p1", "Photosynthesis", "Plants absorb carbon dioxide and release oxygen."),
                              Passage("p2", "Sun", "The sun gives light.")]).save(tmp_path / "kb")
    question = Question("q1", "Which gas do plants absorb?", {"A": "carbon dioxide", "B": "oxygen"}, "A", "obqa")
    setup = script.Setup("obqa", [question], {"q1": "Plants absorb carbon dioxide"}, str(kb), "", 1, 32)
    exported = {}
    for placebo in (False, True):
        store = AnnotationStore(tmp_path / f"{placebo}.db")
        assert script.correct(store, [(question, wrong_answer(question))], setup, "student", placebo=placebo) == ["q1"]
        examples, excluded = build_curated(store.latest(), knowledge=KnowledgeBase.open(kb))
        assert not excluded and len(examples) == 1
        exported[placebo] = examples[0].example.target
    assert "carbon dioxide" in exported[False] and exported[False].rstrip().endswith("Answer: A")
    assert "So the answer is oxygen." in exported[True] and exported[True].rstrip().endswith("Answer: B")


def test_every_student_answers_with_the_engine_asked_for(tmp_path, monkeypatch):
    """--engine transformers must reach Student.load: int8 rounding noise between two students whose
    weights differ a little is what the float32 runs are there to remove."""
    script = load_script()
    from kard import student as student_module

    asked = []

    def fake_load(path, engine="auto", **_):
        asked.append(engine)
        raise RuntimeError("stop before answering")

    monkeypatch.setattr(student_module.Student, "load", staticmethod(fake_load))
    question = Question("q1", "Which gas do plants absorb?", {"A": "carbon dioxide", "B": "oxygen"}, "A", "obqa")
    setup = script.Setup("obqa", [question], {}, "", "", 1, 32)
    for engine in ("transformers", "ctranslate2"):
        with pytest.raises(RuntimeError, match="stop before answering"):
            script.answers("demo/student", [question], setup, tmp_path / f"{engine}.jsonl", engine)
    assert asked == ["transformers", "ctranslate2"]


def test_own_replay_answers_the_replay_with_the_arms_student_once(tmp_path, monkeypatch):
    """--replay own: the arm's current student writes the replay targets, and a resumed run reuses them."""
    import argparse

    from kard import student as student_module
    from kard.distill import StudentExample, read_examples, write_examples
    from kard.student import make_sample

    script = load_script()
    loaded = []

    class Scripted:
        name = "arm student"

        def generate_batch(self, prompts, config, *, letters=()):
            return [make_sample(f"My own view of {p}.\nAnswer: B", ("A", "B"), 4) for p in prompts]

    def fake_load(path, engine="auto", **_):
        loaded.append((path, engine))
        return Scripted()

    monkeypatch.setattr(student_module.Student, "load", staticmethod(fake_load))
    replay = tmp_path / "replay.jsonl"
    write_examples([StudentExample("e1", "q one", " The teacher says A.\nAnswer: A", "human", (), "q1")], replay)
    setup = script.Setup("strategyqa", [], {}, "", "", 1, 32)
    out = tmp_path / "round-1.control.own-replay.jsonl"
    for _ in range(2):
        assert script.own_replay("runs/control/round-001/student", str(replay), out, setup, "transformers") == str(out)
    assert loaded == [("runs/control/round-001/student", "transformers")]
    assert [e.target for e in read_examples(out)] == [" My own view of q one.\nAnswer: B"]
    own = argparse.Namespace(train_seed=0, seed=0, replay="own")
    assert script.replicate(own) == "-own" and script.replicate(argparse.Namespace(train_seed=1, seed=0, replay="teacher")) == "-t1"


def experiment_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """The files the obqa experiment checks for (their contents are not read by these tests)."""
    data, run = tmp_path / "data", tmp_path / "run"
    (data / "openbookqa").mkdir(parents=True)
    (data / "openbookqa" / "dev_complete.jsonl").write_text("{}\n", encoding="utf-8")
    (run / "kb_obqa").mkdir(parents=True)
    (run / "obqa_kard.jsonl").write_text("{}\n", encoding="utf-8")
    return data, run


def no_models(script, monkeypatch) -> None:
    """Every step past the checks replaced: a run only creates its folders, as a real one starts to."""
    def fake_run_setting(s, n, args):
        (args.out / args.dataset).mkdir(exist_ok=True)
        (args.out / f"{args.dataset}-n{n}{script.replicate(args)}").mkdir(exist_ok=True)
        return {}

    monkeypatch.setattr(script, "setup", lambda *a: None)
    monkeypatch.setattr(script, "run_setting", fake_run_setting)
    monkeypatch.setattr(script, "markdown", lambda reports: "")


def test_a_rerun_with_other_settings_on_the_same_out_is_refused(tmp_path, monkeypatch):
    script = load_script()
    no_models(script, monkeypatch)
    data, run = experiment_inputs(tmp_path)
    common = ["--dataset", "obqa", "--corrections", "1", "--rounds", "1", "--pool", "3", "--batch-size", "1",
              "--engine", "transformers", "--data", str(data), "--run", str(run), "--out", str(tmp_path / "out")]
    assert script.main(common + ["--heldout", "3", "--steps", "1"]) == 0
    assert (tmp_path / "out" / "obqa-n1.settings.json").is_file()
    assert (tmp_path / "out" / "obqa.settings.json").is_file()
    assert script.main(common + ["--heldout", "3", "--steps", "1", "--rounds", "2"]) == 0  # more rounds: resumed
    for changed, names in ((["--heldout", "3", "--steps", "2", "--lr", "1e-3"], "lr, steps"),
                           (["--heldout", "2", "--steps", "1"], "heldout"),
                           (["--heldout", "3", "--steps", "1", "--seed", "1"], "seed")):
        with pytest.raises(SystemExit) as refused:
            script.main(common + changed)
        message = str(refused.value)
        assert f"changed: {names}" in message and "Fix: use a new --out folder" in message, message
    with pytest.raises(SystemExit, match="changed: engine"):
        script.main([*common[:-8], "--engine", "ctranslate2", *common[-6:], "--heldout", "3", "--steps", "1"])


def test_missing_data_or_run_folder_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    script = load_script()
    no_models(script, monkeypatch)
    data, run = experiment_inputs(tmp_path)
    with pytest.raises(SystemExit, match=r"does not exist \(the datasets\)\. Fix: .*../shared/data.*--data FOLDER"):
        script.main(["--dataset", "obqa", "--data", str(tmp_path / "none"), "--run", str(run)])
    with pytest.raises(SystemExit, match=r"kb_obqa does not exist .*TRAIN=0 RUN=.*train_default_student.sh"):
        script.main(["--dataset", "obqa", "--data", str(data), "--run", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def test_cached_answers_are_those_of_the_questions_asked(tmp_path, monkeypatch):
    """A results file holding more questions than asked answers only those asked; one missing any is resumed."""
    script = load_script()
    from kard import student as student_module

    monkeypatch.setattr(student_module.Student, "load", staticmethod(lambda *a, **k: pytest.fail("loaded a student")))
    questions = [Question(f"q{i}", "Which?", {"A": "a", "B": "b"}, "A", "obqa") for i in range(3)]
    out = tmp_path / "base-heldout.jsonl"
    out.write_text("".join(wrong_answer(q).to_json() + "\n" for q in questions), encoding="utf-8")
    setup = script.Setup("obqa", questions, {}, "", "", 1, 32)
    assert list(script.answers("demo/student", questions[:2], setup, out, "transformers")) == ["q0", "q1"]


def test_the_shipped_student_is_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(load_script().BASE_STUDENT) == ROOT / "demo" / "student"
    monkeypatch.chdir(ROOT)
    assert load_script().BASE_STUDENT == "demo/student"

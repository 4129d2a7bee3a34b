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

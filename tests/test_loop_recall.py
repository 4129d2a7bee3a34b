"""benchmarks/loop_recall.py: the scripted curator's corrections are the ones recall hands back. If the
export's rules dropped them, recall would find nothing and the benchmark would measure the base student."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from kard.evaluation import EvalRecord
from kard.knowledge import KnowledgeBase
from kard.recall import CorrectionRecall
from kard.records import Passage, Question

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports loop_experiment beside it
    spec = importlib.util.spec_from_file_location("loop_recall", ROOT / "benchmarks" / "loop_recall.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def answer(question: Question, letter: str) -> EvalRecord:
    return EvalRecord(question.id, "kard-bm25", question.answer, letter, letter == question.answer,
                      "Plants make food from light. So the answer is oxygen.", (letter,), {letter: 1}, ("p1",), 12, 0.1)


def test_the_first_n_wrong_pool_answers_are_corrected_and_recalled(tmp_path):
    script = load_script()
    kb = KnowledgeBase.build([Passage("p1", "Photosynthesis", "Plants absorb carbon dioxide and release oxygen.")])
    kb = kb.save(tmp_path / "kb")
    options = {"A": "carbon dioxide", "B": "oxygen"}
    pool = [Question("q1", "Which gas do plants absorb from the air?", options, "A", "obqa"),
            Question("q2", "Which gas do animals breathe out after exercise?", options, "A", "obqa"),
            Question("q3", "Which gas do leaves release in the sun?", options, "B", "obqa")]
    references = {"q1": "Plants absorb carbon dioxide", "q2": "Animals breathe out carbon dioxide",
                  "q3": "Leaves release oxygen"}
    setup = script.Setup("obqa", pool, references, str(kb), "", 1, 32)
    base = {"q1": answer(pool[0], "B"), "q3": answer(pool[2], "B"), "q2": answer(pool[1], "B")}
    store = script.corrections_store(tmp_path, pool, base, setup, 1)
    recall = CorrectionRecall.from_store(store)
    assert len(recall) == 1 and recall.find(pool[0]) is not None  # q1: the first wrong answer (q3 was right)
    assert recall.find(pool[1]) is None and recall.find(pool[2]) is None
    assert "carbon dioxide" in recall.find(pool[0]).passage.text
    assert script.corrections_store(tmp_path, pool, base, setup, 5).count() == 1  # made once, then reused
    assert script.right(base, ["q1", "q2", "q3"]) == 1

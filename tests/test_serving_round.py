"""The app answers with the serving round: after a retrain from the Retrain tab, the Ask tab's next question is
answered by the new round's student (curator mode), and a round that cannot load leaves the old one answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from kard.annotations import AnnotationStore
from kard.config import AnnotationStoreConfig, AppConfig
from kard.loop import round_folder
from kard.ui.studio import Studio

FAST = AnnotationStoreConfig(busy_timeout_s=0.05, retries=1, retry_wait_s=0.01)


def studio_over(loads: list[str], serving) -> Studio:
    def factory() -> str:
        name = serving() or "base"
        if name == "broken":
            raise RuntimeError("no weights")
        loads.append(name)
        return f"pipeline of {name}"

    return Studio(factory, AnnotationStore(":memory:", FAST), serving=serving)


def test_a_new_serving_student_is_loaded_on_the_next_question_and_a_broken_one_is_not_served():
    now = {"value": None}
    loads: list[str] = []
    studio = studio_over(loads, lambda: now["value"])
    assert studio.pipeline() == "pipeline of base" and studio.pipeline() == "pipeline of base"
    now["value"] = "round-001"
    assert studio.pipeline() == "pipeline of round-001"
    assert studio.pipeline() == "pipeline of round-001" and loads == ["base", "round-001"]  # loaded once
    now["value"] = "broken"
    assert studio.pipeline() == "pipeline of round-001"  # logged; the loaded student keeps answering
    assert studio.pipeline() == "pipeline of round-001" and loads == ["base", "round-001"]  # not retried each ask


def test_without_serving_the_pipeline_loads_once():
    loads: list[str] = []
    studio = Studio(lambda: loads.append("x") or "p", AnnotationStore(":memory:", FAST))
    assert studio.pipeline() == studio.pipeline() == "p" and loads == ["x"]


@pytest.fixture
def rounds(tmp_path: Path) -> Path:
    root = tmp_path / "rounds"
    (root / "round-001" / "student").mkdir(parents=True)
    return root


def test_the_app_loads_the_serving_rounds_student_in_curator_mode(rounds, tmp_path, monkeypatch):
    import app
    from kard.pipeline import Pipeline

    asked: list[dict] = []
    fake_load = classmethod(lambda cls, **kwargs: asked.append(kwargs) or Pipeline.__new__(cls))
    monkeypatch.setattr(Pipeline, "load", fake_load)
    config = AppConfig(mode="curator", student="demo/student", reranker="demo/reranker", recall=False,
                       rounds_dir=rounds)
    serving = app.serving_round(config)
    store = AnnotationStore(tmp_path / "a.db", FAST)
    assert serving() is None
    app.default_pipeline_factory(config, store, serving)()
    round_folder.set_current(rounds, "round-001", None, False)
    assert serving() == (str(rounds / "round-001" / "student"), None)
    app.default_pipeline_factory(config, store, serving)()
    assert [(a["student"], a["reranker"]) for a in asked] == [
        ("demo/student", "demo/reranker"), (str(rounds / "round-001" / "student"), "demo/reranker")]
    assert app.serving_round(AppConfig(mode="demo", rounds_dir=rounds)) is None  # the demo has no rounds


def test_a_damaged_pointer_serves_the_configured_student(rounds, caplog):
    import app

    (rounds / "current.json").write_text("{not json", encoding="utf-8")
    serving = app.serving_round(AppConfig(mode="curator", rounds_dir=rounds))
    with caplog.at_level("WARNING", logger="kard.app"):
        assert serving() is None
    assert "cannot be read" in caplog.text and "Traceback" not in caplog.text


def test_a_damaged_pointer_is_logged_once_not_on_every_ask_and_again_once_mended_and_broken(rounds, caplog):
    import app

    serving = app.serving_round(AppConfig(mode="curator", rounds_dir=rounds))
    (rounds / "current.json").write_text("{not json", encoding="utf-8")
    with caplog.at_level("WARNING", logger="kard.app"):
        for _ in range(3):
            assert serving() is None
    assert caplog.text.count("cannot be read") == 1
    round_folder.set_current(rounds, "round-001", None, False)
    assert serving() == (str(rounds / "round-001" / "student"), None)
    (rounds / "current.json").write_text("garbage", encoding="utf-8")
    with caplog.at_level("WARNING", logger="kard.app"):
        serving()
        serving()
    assert caplog.text.count("cannot be read") == 2  # broken again after it was mended: said again, once


def test_the_note_under_the_title_names_the_round_that_answers(rounds, tmp_path):
    import app
    from kard.config import DEFAULT_STUDENT
    from kard.ui.blocks import about_serving

    config = AppConfig(mode="curator", student=DEFAULT_STUDENT, rounds_dir=rounds)
    studio = Studio(lambda: None, AnnotationStore(tmp_path / "a.db", FAST), mode="curator",
                    serving=app.serving_round(config))
    assert "`demo/student`" in about_serving(studio, config)
    round_folder.set_current(rounds, "round-001", None, False)
    note = about_serving(studio, config)
    assert "round-001" in note and "`demo/student`," not in note and "often wrong" in note


def test_the_rounds_folder_follows_the_setting_and_the_persistent_storage(tmp_path, monkeypatch):
    from kard.errors import ConfigError

    monkeypatch.delenv("KARD_ROUNDS_DIR", raising=False)
    monkeypatch.setenv("KARD_PERSISTENT_DIR", str(tmp_path))
    assert AppConfig.from_env().rounds_dir == tmp_path / "kard-studio" / "rounds"  # kept across a Space's restarts
    monkeypatch.setenv("KARD_ROUNDS_DIR", str(tmp_path / "mine"))
    assert AppConfig.from_env().rounds_dir == tmp_path / "mine"
    (tmp_path / "file").write_text("x", encoding="utf-8")
    monkeypatch.setenv("KARD_ROUNDS_DIR", str(tmp_path / "file"))
    with pytest.raises(ConfigError, match="KARD_ROUNDS_DIR.*is a file, not a folder"):
        AppConfig.from_env()


def test_a_damaged_pointer_or_a_missing_round_keeps_the_round_that_was_serving(rounds, caplog):
    import app

    serving = app.serving_round(AppConfig(mode="curator", rounds_dir=rounds))
    round_folder.set_current(rounds, "round-001", None, False)
    first = (str(rounds / "round-001" / "student"), None)
    assert serving() == first
    (rounds / "current.json").write_text("garbage{{", encoding="utf-8")
    assert serving() == first  # not the configured student: the loaded round keeps answering, as the log says
    round_folder.set_current(rounds, "round-002", None, False)  # its student folder was never written
    with caplog.at_level("WARNING", logger="kard.app"):
        assert serving() == first
    assert "round-002 cannot load: round-002's folder is missing" in caplog.text and "current.json" in caplog.text


def test_the_retrain_tab_opens_over_a_damaged_pointer_and_says_so(rounds, tmp_path):
    from kard.errors import KardError
    from kard.ui.loop_tab import LoopPanel

    (rounds / "current.json").write_text("garbage{{", encoding="utf-8")
    studio = Studio(lambda: None, AnnotationStore(tmp_path / "a.db", FAST), mode="curator")
    started: list = []
    panel = LoopPanel(studio, rounds, base_student="demo/student", db=tmp_path / "a.db",
                      launcher=lambda spec: started.append(spec))
    assert panel.round_choices()[0] == ("base (current)", "base") and panel.serving_round() == "base"
    assert "not valid JSON" in panel.status_html() and "kard-loop-head" in panel.status_html()
    assert "current.json" in panel.status_html() and str(rounds) not in panel.status_html()  # no server path
    with pytest.raises(KardError, match="knowledge base .*no-such-kb not found. Fix: .*demo/passages.jsonl"):
        panel.start("", 2, 1, True, str(tmp_path / "no-such-kb"), "alice")
    assert started == []  # refused before the student trains


def test_the_rounds_answer_with_the_engine_the_ask_tab_answers_with(rounds, tmp_path, monkeypatch):
    """The round comparison loaded every round with transformers float32 while the Ask tab decodes with the app's
    engine (CTranslate2 int8 by default), so the same round could answer a question differently in the two tabs."""
    from kard.config import AppConfig
    from kard.student import Student
    from kard.ui import loop_tab

    asked: list = []
    monkeypatch.setattr(Student, "load", classmethod(lambda cls, path, **kw: asked.append((path, kw)) or path))
    studio = Studio(lambda: None, AnnotationStore(tmp_path / "a.db", FAST), mode="curator")
    config = AppConfig(engine="ctranslate2", rounds_dir=rounds, annotations_db=tmp_path / "a.db")
    import gradio as gr

    with gr.Blocks():
        panel = loop_tab.add_loop_tab(studio, config, lambda request, profile: "alice")
    assert panel._student("some/round/student") == "some/round/student"
    assert asked == [("some/round/student", {"engine": "ctranslate2"})]

"""The CTranslate2 decoding engine behind Student: same answers as transformers, streaming, batching,
seeded sampling, cached conversion and the one-line fallback to transformers.

A tiny random Llama built in-test is converted for real (a few seconds); float32 is used where
answers must equal transformers token for token, int8 (the default) where only the path matters.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kard.config import AppConfig, GenerationConfig
from kard import engine
from kard.engine import CTranslate2Engine, fingerprint
from kard.errors import ConfigError
from kard.evaluation import get_condition, run_settings
from kard.config import RetrievalConfig
from kard.prompts import student_input
from kard.records import Question
from kard.student import EngineTextStream, Student
from kard.ui.views import timing_line
from kard.records import Timings
from tiny_models import save_tiny_decoder, save_tiny_t5

pytest.importorskip("ctranslate2", reason="ctranslate2 is in requirements.txt; install it to test the engine")

QUESTIONS = [
    Question(id="q1", text="Which gas do plants absorb?", options={"A": "oxygen", "B": "carbon dioxide"}, answer="B"),
    Question(id="q2", text="What do plants release during photosynthesis?", options={"A": "oxygen", "B": "helium"},
             answer="A"),
    Question(id="q3", text="Which is a gas?", options={"A": "nitrogen", "B": "iron", "C": "wood"}, answer="A"),
]
PROMPTS = [student_input(q) for q in QUESTIONS]
GREEDY = GenerationConfig(max_new_tokens=12)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kard-cache")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("students") / "tiny")


@pytest.fixture()
def cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KARD_CACHE", str(cache))
    return cache


@pytest.fixture()
def pair(folder: Path, cached: Path) -> tuple[Student, Student]:
    """(transformers student, the same weights decoded by CTranslate2 in float32)."""
    reference = Student.load(folder)
    fast = Student.load(folder)
    fast.engine = CTranslate2Engine.for_student(fast, compute_type="float32")
    return reference, fast


def test_float32_engine_answers_token_for_token_like_transformers(pair: tuple[Student, Student]) -> None:
    reference, fast = pair
    for prompt in PROMPTS:
        assert fast.generate(prompt, GREEDY)[0].raw_output == reference.generate(prompt, GREEDY)[0].raw_output
    assert fast.decoding_settings(GREEDY)["engine"] == "ctranslate2 float32"
    assert reference.decoding_settings(GREEDY)["engine"] == "transformers"


def test_batched_answers_equal_one_at_a_time(pair: tuple[Student, Student]) -> None:
    _, fast = pair
    letters = [q.letters for q in QUESTIONS]
    batched = fast.generate_batch(PROMPTS, GREEDY, letters=letters)
    assert [s.raw_output for s in batched] == [fast.generate(p, GREEDY)[0].raw_output for p in PROMPTS]
    assert all(s.answer in q.letters for s, q in zip(batched, QUESTIONS))  # parsed or chosen: never unreadable


def test_stream_yields_the_greedy_text_and_counts_tokens(pair: tuple[Student, Student]) -> None:
    _, fast = pair
    stream = fast.start_stream(PROMPTS[0], GREEDY, letters=QUESTIONS[0].letters)
    assert isinstance(stream, EngineTextStream)
    chunks = list(stream)
    whole = fast.generate(PROMPTS[0], GREEDY)[0]
    assert "".join(chunks).strip() == whole.raw_output
    assert stream.tokens_out == whole.tokens_out >= 1
    assert stream.first_token_s is not None and stream.first_token_s >= 0


def test_closing_a_stream_early_stops_and_frees_the_student(pair: tuple[Student, Student]) -> None:
    _, fast = pair
    stream = iter(fast.start_stream(PROMPTS[0], GenerationConfig(max_new_tokens=40)))
    next(stream)
    stream.close()
    assert fast._lock.acquire(timeout=5)  # the lock was released: the next question can run
    fast._lock.release()


def test_seeded_sampling_repeats_and_draws_n_samples(pair: tuple[Student, Student]) -> None:
    _, fast = pair
    sampling = GenerationConfig(max_new_tokens=12, samples=4, seed=3)
    first = [s.raw_output for s in fast.generate(PROMPTS[0], sampling)]
    again = [s.raw_output for s in fast.generate(PROMPTS[0], sampling)]
    assert len(first) == 4 and first == again
    assert len(set(first)) > 1  # a random tiny model's samples differ


def test_int8_by_default_converted_once_and_again_when_the_weights_change(folder: Path, cached: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kard.engine"):
        student = Student.load(folder, engine="ctranslate2")
    assert student.engine_name == "ctranslate2 int8"
    assert student.generate(PROMPTS[0], GREEDY)[0].tokens_out >= 1
    converted = student.engine.folder
    assert converted.is_relative_to(cached) and (converted / "model.bin").is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kard.engine"):
        Student.load(folder, engine="ctranslate2")
    assert not [r for r in caplog.records if "converting" in r.getMessage()]  # cached: not converted again
    before = fingerprint([str(folder)])
    (folder / "generation_config.json").write_text((folder / "generation_config.json").read_text() + "\n")
    assert fingerprint([str(folder)]) != before


def test_auto_falls_back_to_transformers_in_one_line_when_ctranslate2_is_missing(
        folder: Path, cached: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a))
    with caplog.at_level(logging.WARNING, logger="kard.engine"):
        student = Student.load(folder, engine="auto")
    assert student.engine is None and student.engine_name == "transformers"
    [line] = [r.getMessage() for r in caplog.records]
    assert "ctranslate2" in line and "pip install" in line and "transformers" in line
    assert student.generate(PROMPTS[0], GREEDY)[0].tokens_out >= 1


def test_an_encoder_decoder_student_stays_on_transformers(tmp_path: Path, cached: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kard.engine"):
        student = Student.load(save_tiny_t5(tmp_path / "t5"), engine="auto")
    assert student.engine is None
    assert "encoder-decoder" in caplog.text


def test_unknown_engine_is_refused_with_the_choices(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="auto, ctranslate2, transformers"):
        Student.load(folder, engine="vllm")
    monkeypatch.setenv("KARD_ENGINE", "vllm")
    with pytest.raises(ConfigError, match="KARD_ENGINE='vllm' is not a decoding engine"):
        AppConfig.from_env()


def test_run_settings_name_a_fast_engine_so_runs_never_mix(pair: tuple[Student, Student]) -> None:
    reference, fast = pair
    condition = get_condition("kard-bm25")
    settings = [run_settings(s, condition, None, None, RetrievalConfig(), GREEDY) for s in (reference, fast)]
    assert "engine" not in settings[0]  # as written before engines existed: old runs resume
    assert settings[1]["engine"] == "ctranslate2 float32"


def test_the_app_timing_line_shows_which_engine_answered() -> None:
    line = timing_line(Timings(total_s=1.0), 10, "student", "ctranslate2 int8")
    assert '<span class="kard-engine">ctranslate2 int8</span>' in line


def test_the_conversion_keeps_older_objects_out_of_the_collectors_scans() -> None:
    """ctranslate2 collects garbage after every layer: what existed before is frozen meanwhile, then freed."""
    import gc

    before = gc.get_freeze_count()
    with pytest.raises(RuntimeError), engine._older_objects_frozen():
        assert gc.get_freeze_count() > before
        raise RuntimeError("a conversion that fails")
    assert gc.get_freeze_count() == 0

"""The CTranslate2 decoding engine behind Student: same answers as transformers, streaming, batching,
seeded sampling, cached conversion and the one-line fallback to transformers.

A tiny random Llama built in-test is converted for real (a few seconds); float32 is used where
answers must equal transformers token for token, int8 (the default) where only the path matters.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from kard.config import AppConfig, GenerationConfig
from kard import engine
from kard.disk_cache import content_digest
from kard.engine import CTranslate2Engine
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
    before = content_digest([str(folder)])
    (folder / "generation_config.json").write_text((folder / "generation_config.json").read_text() + "\n")
    assert content_digest([str(folder)]) != before


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


# ---------------------------------------------------------------- the conversion cache


def _copy_with_other_mtimes(folder: Path, target: Path, shift_s: int) -> Path:
    import os
    import shutil

    shutil.copytree(folder, target)
    for file in target.iterdir():
        stat = file.stat()
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns - shift_s * 10**9))
    return target


def test_two_copies_of_a_student_share_one_conversion_named_without_paths(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("KARD_CACHE", str(tmp_path / "cache"))
    first = _copy_with_other_mtimes(folder, tmp_path / "clone-1" / "tiny", 1000)
    second = _copy_with_other_mtimes(folder, tmp_path / "clone-2" / "tiny", 5000)
    one = Student.load(first, engine="ctranslate2")
    with caplog.at_level(logging.INFO, logger="kard.engine"):
        two = Student.load(second, engine="ctranslate2")
    assert not [r for r in caplog.records if "converting" in r.getMessage()]  # the clone reuses the conversion
    assert one.engine.folder == two.engine.folder
    name = one.engine.folder.name
    assert len(name) == 16 and all(c in "0123456789abcdef" for c in name)  # a content digest, no machine path
    assert (one.engine.folder / engine.LABEL_FILE).read_text().strip() == "tiny"


def test_a_new_conversion_keeps_only_the_most_recently_used(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import os

    monkeypatch.setenv("KARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(engine.KEEP_ENV, "3")
    engines = tmp_path / "cache" / "engines" / "ctranslate2-int8"
    for age, name in enumerate(["newest", "newer", "older", "oldest"]):
        (engines / name).mkdir(parents=True)
        (engines / name / "model.bin").write_bytes(b"x" * 10)
        os.utime(engines / name, (time.time() - 3600 * (age + 1),) * 2)
    with caplog.at_level(logging.INFO, logger="kard.disk_cache"):
        student = Student.load(folder, engine="ctranslate2")
    kept = {p.name for p in engines.iterdir()}
    assert kept == {student.engine.folder.name, "newest", "newer"}
    assert "older" in caplog.text and "oldest" in caplog.text and "removed" in caplog.text
    shutil.rmtree(student.engine.folder)  # pruned by another process: sampling converts it again
    assert len(student.generate(PROMPTS[0], GenerationConfig(max_new_tokens=4, samples=2, seed=1))) == 2
    assert (student.engine.folder / "model.bin").is_file()


def test_prune_keeps_the_newest_the_spare_and_scratch_being_written(tmp_path: Path) -> None:
    import os

    from kard.disk_cache import STALE_SCRATCH_S, prune

    now = time.time()
    ages = {"a": 10, "b": 20, "c": 30, "d": 40, "spare": 999, ".convert-live": 5, ".convert-dead": STALE_SCRATCH_S + 60}
    for name, age in ages.items():
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (now - age, now - age))
    removed = prune(tmp_path, keep=3, spare=tmp_path / "spare")
    assert {p.name for p in removed} == {"c", "d", ".convert-dead"}
    assert {p.name for p in tmp_path.iterdir()} == {"a", "b", "spare", ".convert-live"}


def test_file_digests_are_remembered_by_path_size_and_mtime(folder: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from kard import disk_cache

    monkeypatch.setenv("KARD_CACHE", str(tmp_path / "cache"))
    copy = _copy_with_other_mtimes(folder, tmp_path / "tiny", 0)
    hashed: list[str] = []
    real = disk_cache.file_sha256
    monkeypatch.setattr(disk_cache, "file_sha256", lambda path: hashed.append(path.name) or real(path))
    digest = content_digest([str(copy), "HuggingFaceTB/SmolLM2-135M-Instruct"])
    assert hashed and str(tmp_path) not in digest
    hashed.clear()
    assert content_digest([str(copy), "HuggingFaceTB/SmolLM2-135M-Instruct"]) == digest and hashed == []  # only stats
    config = copy / "config.json"
    os.utime(config, ns=(0, config.stat().st_mtime_ns + 10**9))
    assert content_digest([str(copy), "HuggingFaceTB/SmolLM2-135M-Instruct"]) == digest and hashed == ["config.json"]
    assert content_digest([str(copy)]) != digest

"""`kard ask` decodes with $KARD_ENGINE when --engine is not given, checked as the app checks it; the flag wins."""

from __future__ import annotations

import pytest

from kard import pipeline
from kard.__main__ import main
from kard.errors import DataError

ASK = ["ask", "Which is a mammal?", "--options", "A) shark B) dolphin"]


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine each Pipeline.load was asked for; the load then stops the command (no model is read)."""
    asked: list[str] = []

    def load(*args: object, engine: str = "auto", **kwargs: object) -> None:
        asked.append(engine)
        raise DataError("stopped before loading")

    monkeypatch.setattr(pipeline.Pipeline, "load", staticmethod(load))
    monkeypatch.delenv("KARD_ENGINE", raising=False)
    return asked


@pytest.mark.parametrize("env, flags, engine", [
    (None, [], "auto"),
    ("", [], "auto"),
    ("transformers", [], "transformers"),
    ("ctranslate2", [], "ctranslate2"),
    ("transformers", ["--engine", "auto"], "auto"),
    (None, ["--engine", "transformers"], "transformers"),
])
def test_ask_takes_its_engine_from_the_flag_then_kard_engine(
        engines: list[str], monkeypatch: pytest.MonkeyPatch, env: str | None, flags: list[str], engine: str) -> None:
    if env is not None:
        monkeypatch.setenv("KARD_ENGINE", env)
    assert main([*ASK, *flags]) == 2
    assert engines == [engine]


def test_an_unknown_kard_engine_is_one_line_before_any_model_loads(
        engines: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("KARD_ENGINE", "vllm")
    assert main(ASK) == 2
    said = capsys.readouterr()
    assert said.err == ("error: KARD_ENGINE='vllm' is not a decoding engine. "
                        "Fix: set KARD_ENGINE to one of auto, ctranslate2, transformers\n")
    assert not said.out and engines == []


def test_an_unknown_kard_engine_is_overridden_by_the_flag(engines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARD_ENGINE", "vllm")
    assert main([*ASK, "--engine", "transformers"]) == 2
    assert engines == ["transformers"]


def test_ask_help_names_kard_engine(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    assert "$KARD_ENGINE" in " ".join(capsys.readouterr().out.split())

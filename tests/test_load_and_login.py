"""Bounded load and a login that stops guessing (issue 16, items 8 and 10)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kard.config import AppConfig
from kard.errors import ConfigError
from kard.ui.login import ThrottledLogin


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_thirty_wrong_passwords_lock_the_login_even_for_the_right_one() -> None:
    clock = FakeClock()
    login = ThrottledLogin("curator", "s3cret", max_failures=5, window_s=60, clock=clock)
    assert login("curator", "s3cret")
    results = [login("curator", f"guess-{i}") for i in range(30)]
    assert not any(results) and login.locked()
    assert not login("curator", "s3cret")  # the right password no longer gets through
    clock.now += 59
    assert not login("curator", "s3cret")
    clock.now += 2  # a minute after the last counted failure
    assert login("curator", "s3cret") and not login.locked()


def test_a_wrong_user_counts_as_a_failure_and_a_few_slips_do_not_lock() -> None:
    login = ThrottledLogin("curator", "s3cret", max_failures=5, window_s=60, clock=FakeClock())
    assert not login("someone", "s3cret")
    for _ in range(3):
        assert not login("curator", "typo")
    assert login("curator", "s3cret")


def test_queue_size_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARD_QUEUE_SIZE", "lots")
    with pytest.raises(ConfigError, match="KARD_QUEUE_SIZE='lots' is not a number"):
        AppConfig.from_env()
    monkeypatch.setenv("KARD_QUEUE_SIZE", "0")
    with pytest.raises(ConfigError, match="below 1"):
        AppConfig.from_env()
    monkeypatch.setenv("KARD_QUEUE_SIZE", "3")
    assert AppConfig.from_env().queue_size == 3


def test_asks_past_the_queue_bound_are_refused_at_once_and_the_rest_answered(tmp_path) -> None:
    gradio_client = pytest.importorskip("gradio_client")
    from app_fixtures import PASSWORD, QUESTIONS, USER, launched, tiny_pipeline

    from kard.prompts import format_options

    pipeline = tiny_pipeline(tmp_path)
    stream = pipeline.stream

    def slow_stream(question):  # every ask holds its worker for a second
        time.sleep(1.0)
        yield from stream(question)

    pipeline.stream = slow_stream
    question = QUESTIONS[0]
    with launched(lambda: pipeline, tmp_path, queue_size=1) as (url, _):
        client = gradio_client.Client(url, auth=(USER, PASSWORD), verbose=False)

        def ask(_: int) -> str:
            try:
                client.predict(question.text, format_options(question.options), question.id, api_name="/ask")
                return "answered"
            except Exception as error:  # noqa: BLE001 - the client's error for a full queue
                return str(error)

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(ask, range(12)))
    answered = outcomes.count("answered")
    refused = [o for o in outcomes if o != "answered"]
    assert answered >= 1 and refused, outcomes
    assert all("queue" in o.lower() for o in refused), refused


def test_the_login_page_states_the_lockout_before_and_after_it_starts() -> None:
    """Gradio's login page says "Incorrect Credentials" for a wrong password and a lockout alike and shows
    only a static message: that message says after how many wrong passwords, and for how long, logins stop."""
    import app

    options = app.launch_options(AppConfig(mode="curator", curator_user="u", curator_password="p"))
    message = options["auth_message"]
    assert "Wrong password or too many tries" in message and "after 5 wrong passwords" in message
    assert "a minute" in message and "the right password too" in message
    slow = ThrottledLogin("u", "p", max_failures=3, window_s=90)
    assert "after 3 wrong passwords" in slow.rule() and "90 seconds" in slow.rule()

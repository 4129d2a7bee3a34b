"""The teacher against a real HTTP server on 127.0.0.1, through the real `openai` client."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest
from fake_openai_server import (
    FakeOpenAI,
    Reply,
    answer_with,
    by_question,
    last_user_message,
    raw_body,
    status,
)

from kard.config import TeacherConfig
from kard.errors import DataError, KardError
from kard.records import Question, Rationale
from kard.teacher.client import (
    CutOffReply,
    Teacher,
    TeacherAuthError,
    TeacherCacheError,
    TeacherIncompleteError,
    TeacherReplyError,
    TeacherServerError,
    TeacherTimeoutError,
    TeacherUnreachableError,
    keep_correct,
)
from kard.teacher.cache import CachedReply, CachedSample, CacheKey, TeacherCache
from kard.teacher.prompts import build_messages, question_kind

KEY = "sk-test-KARD-0123456789-SECRET"  # recognisable, so the leak test can grep for it
OPTIONS = {"A": "aspirin", "B": "insulin", "C": "heparin", "D": "warfarin"}


def medqa(i: int, gold: str = "B") -> Question:
    return Question(f"medqa-dev-{i}", f"Patient {i} needs which drug?", OPTIONS, gold, "medqa")


QUESTIONS = [medqa(i) for i in range(6)]


@pytest.fixture
def server():
    with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def make_teacher(server: FakeOpenAI, cache_path=None, **overrides) -> Teacher:
    settings = dict(model="fake-teacher", base_url=server.url, max_retries=1, timeout_s=5.0, concurrency=2)
    settings.update(overrides)
    return Teacher(TeacherConfig(**settings), cache_path=cache_path, api_key=KEY)


# ----------------------------------------------------------------------------- prompts


def test_rationalize_prompt_shows_gold_and_answer_prompt_hides_it():
    question = medqa(0, gold="C")
    rationalize = build_messages(question, "rationalize")
    answer = build_messages(question, "answer")
    assert rationalize[-1]["content"].endswith("Correct answer: C. heparin\nExplanation:")
    assert "Correct answer" not in answer[-1]["content"]
    assert all("Correct answer" not in m["content"] for m in answer)
    assert [m["role"] for m in rationalize[:3]] == ["system", "user", "assistant"]
    assert rationalize[2]["content"].splitlines()[-1].startswith("Answer: ")


def test_question_kind_picks_examples_per_dataset():
    assert question_kind(medqa(0)) == "medical"
    assert question_kind(Question("s", "Is it?", {"A": "yes", "B": "no"}, "A", "strategyqa")) == "yesno"
    assert (
        question_kind(Question("o", "Which?", {"A": "x", "B": "y", "C": "z", "D": "w"}, "A", "openbookqa"))
        == "science"
    )
    assert question_kind(Question("d", "Which?", {"A": "x", "B": "y"}, "A", "demo-medical")) == "medical"
    assert (
        "Paris"
        in build_messages(Question("s", "Is it?", {"A": "yes", "B": "no"}, "A"), "answer")[1]["content"]
    )


OPEN_QUESTION = Question("custom", "Which vitamin deficiency causes rickets?", {}, None, "custom", kind="open")


def test_open_question_prompts_ask_for_a_short_answer_without_options():
    answer = build_messages(OPEN_QUESTION, "answer")
    assert question_kind(OPEN_QUESTION) == "open" and "short answer" in answer[0]["content"]
    assert "letter" not in answer[0]["content"] and answer[-1]["content"] == (
        "Question: Which vitamin deficiency causes rickets?\nExplanation:")
    assert all(not m["content"].splitlines()[-1].startswith("Answer: ") or len(m["content"].splitlines()[-1]) > 10
               for m in answer if m["role"] == "assistant")  # examples end with a short answer, not a letter
    gold = Question("o", OPEN_QUESTION.text, {}, "vitamin D", kind="open")
    assert build_messages(gold, "rationalize")[-1]["content"].endswith("Correct answer: vitamin D\nExplanation:")
    with pytest.raises(DataError, match="no gold answer"):
        build_messages(OPEN_QUESTION, "rationalize")


def test_the_teacher_answers_an_open_question_in_free_text(server):
    server.responder = answer_with("Soft bones in children come from too little vitamin D.\nAnswer: vitamin D.")
    with make_teacher(server) as teacher:
        answered = teacher.answer(OPEN_QUESTION)
    assert (answered.text, answered.answer) == ("Soft bones in children come from too little vitamin D.", "vitamin D")
    gold = Question("o", OPEN_QUESTION.text, {}, "Vitamin D", kind="open")
    assert keep_correct([answered], gold) == [answered]  # open answers compare as words


def test_few_shot_examples_do_not_give_away_demo_questions():
    from kard.datasets import load_demo_questions
    from kard.teacher.prompts import EXAMPLES

    def similarity(a: str, b: str) -> float:
        words_a, words_b = ({w.strip(".,?!()").lower() for w in t.split() if len(w) > 3} for t in (a, b))
        return len(words_a & words_b) / len(words_a | words_b) if words_a | words_b else 0.0

    for example in (e for examples in EXAMPLES.values() for e in examples):
        for question in load_demo_questions():
            assert similarity(example.text, question.text) < 0.25, (example.text, question.text)
            gold = question.options[question.answer]
            example_gold = example.options.get(example.answer, example.answer)  # an open example has no options
            assert similarity(example_gold, gold) < 0.5, (example.text, question.text)


# ----------------------------------------------------------------------------- happy path, n, filter


def test_rationalize_parses_each_sample(server):
    server.responder = answer_with("Insulin lowers glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        rationales = teacher.rationalize(medqa(1), n=1)
    assert rationales == [
        Rationale("medqa-dev-1", "Insulin lowers glucose.", "B", "fake-teacher (teacher-v1/rationalize)", 0)
    ]
    body = server.requests[0]
    assert body["model"] == "fake-teacher"
    assert "Correct answer: B. insulin" in last_user_message(body)
    assert "n" not in body


def test_n_samples_in_one_request(server):
    server.responder = answer_with("One.\nAnswer: B", "Two.\nAnswer: A", "Three.\nAnswer: B")
    with make_teacher(server) as teacher:
        rationales = teacher.rationalize(medqa(2), n=3)
    assert [(r.sample_index, r.text, r.answer) for r in rationales] == [
        (0, "One.", "B"),
        (1, "Two.", "A"),
        (2, "Three.", "B"),
    ]
    assert server.count == 1 and server.requests[0]["n"] == 3
    assert [r.sample_index for r in keep_correct(rationales, medqa(2))] == [0, 2]


def test_server_ignoring_n_gets_one_request_per_missing_sample(server):
    server.responder = answer_with("Same.\nAnswer: B", honor_n=False)  # like llama.cpp / Ollama
    with make_teacher(server, concurrency=1) as teacher:
        first = teacher.rationalize(medqa(3), n=3)
        second = teacher.rationalize(medqa(4), n=2)
    assert [r.sample_index for r in first] == [0, 1, 2] and len(second) == 2
    # 1 request with n=3 returned one choice, then 2 single requests; the next question skips n.
    assert [body.get("n") for body in server.requests] == [3, None, None, None, None]


def test_server_refusing_n_falls_back_to_single_requests(server):
    server.script(status(400, "n must be 1"))
    server.responder = answer_with("Fine.\nAnswer: B")
    with make_teacher(server) as teacher:
        rationales = teacher.rationalize(medqa(5), n=2)
    assert [r.answer for r in rationales] == ["B", "B"]
    assert [body.get("n") for body in server.requests] == [2, None, None]


def test_teach_filters_by_gold_and_reports_reasons(server):
    server.responder = by_question(
        {
            "Patient 0 ": "Insulin.\nAnswer: B",
            "Patient 1 ": "Aspirin.\nAnswer: A",  # wrong
            "Patient 2 ": "I am not sure what to say here.",  # malformed: no Answer line, no letter
        }
    )
    questions = QUESTIONS[:3]
    with make_teacher(server) as teacher:
        report = teacher.teach(questions, n=2)
    assert [(r.question_id, r.answer) for r in report.kept] == [("medqa-dev-0", "B"), ("medqa-dev-0", "B")]
    assert report.dropped == {"wrong answer": 2, "no answer": 2, "cut off": 0, "filtered": 0, "error": 0}
    assert {(r.question_id, r.answer, r.text) for r in report.rejected} == {
        ("medqa-dev-1", "A", "Aspirin."),
        ("medqa-dev-2", None, "I am not sure what to say here."),
    }
    assert report.usage.requests == 3 and report.cached == 0
    assert report.usage.tokens_in > 0 and report.usage.tokens_out > 0
    assert report.cost_usd is None and report.errors == () and report.stopped is None


def test_cost_from_configured_prices(server):
    server.responder = answer_with("Insulin.\nAnswer: B")
    with make_teacher(server, price_in_per_mtok=1.0, price_out_per_mtok=4.0) as teacher:
        report = teacher.teach(QUESTIONS[:2], n=1)
    expected = (report.usage.tokens_in * 1.0 + report.usage.tokens_out * 4.0) / 1e6
    assert report.cost_usd == pytest.approx(expected) and report.cost_usd > 0


def test_malformed_output_is_kept_as_no_answer(server):
    server.responder = answer_with("The drug is one that lowers sugar")
    with make_teacher(server) as teacher:
        [rationale] = teacher.rationalize(medqa(0), n=1)
    assert rationale.answer is None and rationale.text == "The drug is one that lowers sugar"
    assert keep_correct([rationale], medqa(0)) == []


def test_questions_without_gold_are_refused_before_any_request(server):
    with make_teacher(server) as teacher, pytest.raises(DataError, match="no gold answer"):
        teacher.teach([Question("u1", "Which?", OPTIONS, None)], n=1)
    assert server.count == 0


def test_zero_samples_is_a_config_error(server):
    with make_teacher(server) as teacher:
        with pytest.raises(KardError, match="at least 1"):
            teacher.teach(QUESTIONS, n=0)
        with pytest.raises(KardError, match="at least 1"):
            teacher.rationalize(medqa(0), n=0)
    assert server.count == 0


# ----------------------------------------------------------------------------- cache and resume


def test_cache_hits_make_no_second_request(server, tmp_path):
    server.responder = answer_with("Insulin.\nAnswer: B")
    cache = tmp_path / "teacher.sqlite"
    with make_teacher(server, cache) as teacher:
        first = teacher.teach(QUESTIONS, n=2)
    assert server.count == len(QUESTIONS)
    with make_teacher(server, cache) as teacher:  # a new process would see the same file
        again = teacher.teach(QUESTIONS, n=2)
        more = teacher.teach(QUESTIONS, n=3)  # only sample 2 of each question is missing
    assert again.kept == first.kept and again.cached == 12 and again.usage.requests == 0
    assert server.count == 2 * len(QUESTIONS)
    assert more.cached == 12 and more.usage.requests == len(QUESTIONS)
    assert all(body.get("n") is None for body in server.requests[len(QUESTIONS) :])


def test_changed_question_text_is_not_served_from_cache(server):
    server.responder = answer_with("Insulin.\nAnswer: B")
    with make_teacher(server) as teacher:
        teacher.rationalize(medqa(0), n=1)
        edited = Question("medqa-dev-0", "Patient 0, edited, needs which drug?", OPTIONS, "B", "medqa")
        teacher.rationalize(edited, n=1)
        teacher.rationalize(edited, n=1)
    assert server.count == 2


def test_interrupted_job_resumes_with_only_missing_requests(server, tmp_path):
    server.responder = answer_with("Insulin.\nAnswer: B")
    cache = tmp_path / "teacher.sqlite"
    finished = []

    def interrupt_after_two(outcome):
        finished.append(outcome)
        if len(finished) == 2:
            raise KeyboardInterrupt

    with make_teacher(server, cache, concurrency=1) as teacher, pytest.raises(KeyboardInterrupt):
        teacher.teach(QUESTIONS, n=2, progress=interrupt_after_two)
    first_run = server.count
    assert 2 <= first_run < len(QUESTIONS)
    done = TeacherCache(cache).count() // 2  # the two seen, and one whose reply came within INTERRUPT_WAIT_S
    assert 2 <= done <= first_run
    with make_teacher(server, cache) as teacher:
        report = teacher.teach(QUESTIONS, n=2)
    assert len(report.kept) == 2 * len(QUESTIONS)
    assert report.cached == 2 * done and report.usage.requests == len(QUESTIONS) - done
    asked_again = [last_user_message(body).split("\n")[0] for body in server.requests[first_run:]]
    cached_first = [last_user_message(body).split("\n")[0] for body in server.requests[:done]]
    assert not set(asked_again) & set(cached_first)  # nothing the cache kept is paid for twice


def test_a_cache_locked_by_another_process_names_the_file_and_the_fix(tmp_path):
    import sqlite3

    path = tmp_path / "teacher.sqlite"
    cache = TeacherCache(path, busy_timeout_s=0.1)
    other = sqlite3.connect(path, timeout=0.1)  # another process's job, in the middle of a write
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TeacherCacheError, match=f"{path} is locked by another process.*another --cache"):
            cache.put(CacheKey("m", "v1", "q1", 0), CachedSample("Insulin.\nAnswer: B", "sha"))
    finally:
        other.rollback()
        other.close()
        cache.close()


def test_a_cache_path_that_is_a_folder_says_so_and_asks_for_a_file(tmp_path):
    from kard.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        TeacherCache(tmp_path)
    message = str(refused.value)
    assert f"the teacher cache path {tmp_path} is a folder, not a file. Fix: pass a file path as --cache" in message
    assert "delete" not in message and list(tmp_path.iterdir()) == []


def test_a_read_only_cache_stops_the_job_with_the_file_and_the_fix(server, tmp_path):
    path = tmp_path / "teacher.sqlite"
    server.responder = answer_with("Insulin.\nAnswer: B")
    with make_teacher(server, path, concurrency=1) as teacher:
        teacher.cache._db.execute("PRAGMA query_only = ON")  # as a file this process may not write
        report = teacher.teach(QUESTIONS, n=1)
    assert report.stopped and f"teacher cache {path} is read-only" in report.stopped
    assert "make the file and its folder writable, or pass another --cache" in report.stopped
    assert server.count <= 2  # stopped on the first question, not paid for all six


# ----------------------------------------------------------------------------- failures


def test_wrong_key_says_check_the_key(server):
    teacher = Teacher(
        TeacherConfig(model="m", base_url=server.url, max_retries=3), cache_path=None, api_key="sk-wrong"
    )
    with teacher, pytest.raises(TeacherAuthError, match="check OPENAI_API_KEY"):
        teacher.rationalize(medqa(0), n=1)
    assert server.auth_failures == 1  # 401 is not retried


def test_wrong_key_stops_a_job_early(server):
    teacher = Teacher(
        TeacherConfig(model="m", base_url=server.url, concurrency=1), cache_path=None, api_key="sk-wrong"
    )
    with teacher:
        report = teacher.teach(QUESTIONS, n=1)
    assert report.stopped and "check OPENAI_API_KEY" in report.stopped
    assert server.auth_failures <= 2 and report.kept == ()  # the one in flight, not all six
    assert report.dropped["error"] == len(QUESTIONS)


def test_rate_limit_then_success_is_retried(server):
    server.script(status(429, "slow down"), status(429, "slow down"))
    server.responder = answer_with("Insulin.\nAnswer: B")
    with make_teacher(server, max_retries=2) as teacher:
        [rationale] = teacher.rationalize(medqa(0), n=1)
    assert rationale.answer == "B" and server.count == 3
    assert teacher.usage.requests == 3  # the retried tries were sent too


def test_persistent_500_gives_up_on_that_question_and_keeps_the_rest(server):
    failing = Reply(status=500, error="boom", headers={"retry-after-ms": "1"})
    server.responder = by_question({"Patient 3 ": failing}, default="Insulin.\nAnswer: B")
    with make_teacher(server, max_retries=2) as teacher:
        report = teacher.teach(QUESTIONS, n=1)
        sent_by_the_job = server.count
        with pytest.raises(TeacherServerError, match="kept failing \\(HTTP 500\\) after 2 retries"):
            teacher.rationalize(medqa(3), n=1)
    assert [qid for qid, _ in report.errors] == ["medqa-dev-3"]
    assert "kept failing (HTTP 500)" in report.errors[0][1] and "rerun" in report.errors[0][1]
    assert sorted(r.question_id for r in report.kept) == [q.id for q in QUESTIONS if q.id != "medqa-dev-3"]
    assert report.dropped["error"] == 1 and report.stopped is None
    failed_tries = [b for b in server.requests if "Patient 3 " in last_user_message(b)]
    assert len(failed_tries) == 3 + 3  # 1 try + 2 retries, in the job and in the direct call
    assert report.usage.requests == sent_by_the_job == 5 + 3  # the given-up question's tries count
    assert f"{sent_by_the_job} requests" in report.summary()


def test_slow_server_times_out_with_a_clear_error(server):
    server.responder = lambda body: Reply(texts=("Late.\nAnswer: B",), delay_s=1.0)
    with make_teacher(server, timeout_s=0.2, max_retries=0) as teacher:
        with pytest.raises(TeacherTimeoutError, match="within 0.2 s"):
            teacher.rationalize(medqa(0), n=1)
        assert teacher.cache.count() == 0


NOT_COMPLETIONS = {
    "a web page": raw_body("<html><body>Welcome</body></html>", "text/html"),
    "a web page labelled JSON": raw_body("<html><body>Welcome</body></html>"),
    "a JSON string": raw_body('"ok"'),
    "a JSON list": raw_body("[1, 2]"),
    "an object as the message": raw_body(
        json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": {"text": "B"}}}]})
    ),
}


@pytest.mark.parametrize("reply", NOT_COMPLETIONS.values(), ids=NOT_COMPLETIONS.keys())
def test_a_reply_that_is_not_a_chat_completion_stops_the_job(server, reply):
    server.responder = lambda body: reply
    with make_teacher(server, concurrency=1) as teacher:
        with pytest.raises(TeacherReplyError, match="did not answer with a chat completion.*Fix: check --base-url"):
            teacher.rationalize(medqa(0), n=1)
        report = teacher.teach(QUESTIONS, n=1)
    assert report.stopped and f"the server at {server.url}" in report.stopped
    assert report.kept == () and server.count <= 3  # stopped after the first reply, not one per question


PROVIDER_ERROR = json.dumps({"error": {"message": "Provider returned error: upstream overloaded", "code": 502}})


def test_an_error_in_a_200_reply_is_retried_then_given_up_like_a_5xx_with_the_servers_message(server):
    server.script(raw_body(PROVIDER_ERROR))  # OpenRouter-style: HTTP 200 whose body is an error
    server.responder = by_question({"Patient 1 ": raw_body(PROVIDER_ERROR)}, default="Insulin.\nAnswer: B")
    with make_teacher(server, concurrency=1, max_retries=1) as teacher:
        report = teacher.teach(QUESTIONS[:3], n=1)
    assert report.stopped is None and len(report.kept) == 2  # retried: question 0's second try answered
    assert [qid for qid, _ in report.errors] == ["medqa-dev-1"]
    assert "answered with an error instead of a reply (HTTP 200) after 1 retry: Provider returned error: upstream " \
           "overloaded. Fix: rerun later" in report.errors[0][1]
    assert server.count == 5 and report.usage.requests == 5  # every request that reached the server is counted


def test_an_error_event_in_a_stream_shows_the_servers_message(server):
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Insulin"}, "finish_reason": None}]}
    server.script(raw_body(f"data: {json.dumps(chunk)}\n\ndata: {PROVIDER_ERROR}\n\n", "text/event-stream"))
    with make_teacher(server, shown_in="app") as teacher:
        with pytest.raises(TeacherServerError, match="sent an error instead of the rest of its reply: Provider "
                                                     "returned error: upstream overloaded. Fix: ask again later"):
            list(teacher.stream_answer(medqa(0)))
        assert teacher.usage.requests == 1 and teacher.cache.count() == 0


def test_a_reply_that_is_no_completion_still_counts_as_a_request(server):
    server.script(raw_body("<html><body>Login</body></html>", "text/html"))
    with make_teacher(server) as teacher:
        with pytest.raises(TeacherReplyError):
            teacher.rationalize(medqa(0), n=1)
        assert teacher.usage.requests == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whitespace", "stream comments"])
def test_keep_alive_bytes_do_not_hold_a_request_past_the_timeout(server, stream):
    server.responder = lambda body: Reply(texts=("Insulin.\nAnswer: B",), keep_alive_s=30.0)
    with make_teacher(server, timeout_s=1.0, max_retries=0, shown_in="app") as teacher:
        started = time.monotonic()
        with pytest.raises(TeacherTimeoutError, match="no reply from .* within 1 s") as failed:
            list(teacher.stream_answer(medqa(0))) if stream else teacher.answer(medqa(0))
        assert time.monotonic() - started < 5 and teacher.usage.requests == 1
    # a stream times out while its body is read, after the client's retries: it claims none
    assert ("its reply had begun, so no retry" in str(failed.value)) == stream


def test_a_reply_after_keep_alive_bytes_within_the_timeout_still_comes(server):
    server.responder = lambda body: Reply(texts=("Insulin.\nAnswer: B",), keep_alive_s=0.3)
    with make_teacher(server, timeout_s=2.0) as teacher:
        assert teacher.answer(medqa(0)).answer == "B"
        assert "".join(teacher.stream_answer(medqa(1))).endswith("Answer: B")


def test_unreachable_server_names_the_address():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    teacher = Teacher(
        TeacherConfig(model="m", base_url=url, max_retries=0, timeout_s=2), cache_path=None, api_key=KEY
    )
    with teacher, pytest.raises(TeacherUnreachableError, match=f"is the server at {url} running"):
        teacher.answer(medqa(0))


def test_no_key_and_no_base_url_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(KardError, match="set OPENAI_API_KEY"):
        Teacher(TeacherConfig(model="m", base_url=None), cache_path=None)


# ----------------------------------------------------------------------------- answer mode and streaming


def test_answer_hides_gold_and_uses_answer_temperature(server):
    server.responder = answer_with("Heparin is an anticoagulant.\nAnswer: C")
    with make_teacher(server, answer_temperature=0.0, temperature=1.0) as teacher:
        rationale = teacher.answer(medqa(0))
    assert (rationale.answer, rationale.source) == ("C", "fake-teacher (teacher-v1/answer)")
    assert "Correct answer" not in last_user_message(server.requests[0])
    assert server.requests[0]["temperature"] == 0.0


def test_stream_answer_yields_chunks_then_caches(server):
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        chunks = list(teacher.stream_answer(medqa(0)))
        assert len(chunks) > 1 and "".join(chunks) == "Insulin lowers blood glucose.\nAnswer: B"
        assert server.requests[0]["stream"] is True
        assert list(teacher.stream_answer(medqa(0))) == ["".join(chunks)]
        assert teacher.answer(medqa(0)).answer == "B"  # answer() shares the streamed reply
    assert server.count == 1


BAD_STREAMS = {
    "cut off": (Reply(texts=("Insulin lowers glucose. Reasoning step one.",), finish_reason=None),
                TeacherIncompleteError, "stopped sending after 43 characters, before the reply finished"),
    "empty": (Reply(texts=("",)), TeacherIncompleteError, "sent an empty reply .*it was not kept. Fix: rerun"),
    "only whitespace": (Reply(texts=(" \n\t \n",)), TeacherIncompleteError,
                        "sent an empty reply .*it was not kept. Fix: rerun"),
    "a web page": (raw_body("<html><body>Login</body></html>", "text/html"), TeacherReplyError,
                   "got no chat completion chunks in a text/html body.*Fix: check --base-url"),
    "events without choices": (raw_body('data: {"result": "hello"}\n\ndata: [DONE]\n\n', "text/event-stream"),
                               TeacherReplyError, "got a stream event without a list of choices"),
}


@pytest.mark.parametrize("bad", BAD_STREAMS.values(), ids=BAD_STREAMS.keys())
def test_a_cut_empty_or_wrong_stream_is_an_error_and_the_next_ask_asks_again(server, bad):
    reply, error, message = bad
    server.script(reply)
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        with pytest.raises(error, match=message):
            list(teacher.stream_answer(medqa(0)))
        assert teacher.cache.count() == 0
        assert "".join(teacher.stream_answer(medqa(0))) == "Insulin lowers blood glucose.\nAnswer: B"
    assert server.count == 2


def test_a_cut_reply_cached_before_the_check_is_asked_again(server):
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        request = teacher._prepare(medqa(0), "answer")
        teacher.cache.put(request.key(teacher.model, 0), CachedSample("Insulin lowers", request.sha, None))
        assert "".join(teacher.stream_answer(medqa(0))).endswith("Answer: B")
    assert server.count == 1


NO_ANSWER_REPLY = "Insulin and heparin both come to mind; it depends on the patient."


def test_a_streamed_reply_without_an_answer_is_shown_but_not_cached_so_the_next_ask_asks_again(server, tmp_path):
    server.script(Reply(texts=(NO_ANSWER_REPLY,)))
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server, cache_path=tmp_path / "c.sqlite") as teacher:
        assert "".join(teacher.stream_answer(medqa(0))) == NO_ANSWER_REPLY  # shown: it may still be useful text
        assert teacher.cache.count() == 0
        fresh = list(teacher.stream_answer(medqa(0)))
        assert not any(isinstance(chunk, CachedReply) for chunk in fresh)
        assert "".join(fresh) == "Insulin lowers blood glucose.\nAnswer: B" and teacher.cache.count() == 1
    assert server.count == 2


def test_an_answerless_reply_cached_before_the_check_is_asked_again(server):
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        request = teacher._prepare(medqa(0), "answer")
        teacher.cache.put(request.key(teacher.model, 0), CachedSample(NO_ANSWER_REPLY, request.sha, "stop"))
        assert "".join(teacher.stream_answer(medqa(0))).endswith("Answer: B")
        assert teacher.answer(medqa(0)).answer == "B"  # the answer that replaced it is served from the cache
    assert server.count == 1


def test_answer_mode_does_not_cache_a_reply_without_an_answer(server):
    server.script(Reply(texts=(NO_ANSWER_REPLY,)))
    server.responder = answer_with("Heparin is an anticoagulant.\nAnswer: C")
    with make_teacher(server) as teacher:
        assert teacher.answer(medqa(0)).answer is None
        assert teacher.cache.count() == 0
        assert teacher.answer(medqa(0)).answer == "C"
        assert teacher.answer(medqa(0)).answer == "C"
    assert server.count == 2


def test_a_cached_reply_comes_back_marked_with_when_it_was_fetched(server):
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        before = time.time()
        live = list(teacher.stream_answer(medqa(0)))
        (cached,) = list(teacher.stream_answer(medqa(0)))
    assert not any(isinstance(chunk, CachedReply) for chunk in live)
    assert isinstance(cached, CachedReply) and cached == "".join(live)
    assert before - 1 <= cached.fetched_at <= time.time() and server.count == 1


def test_teach_keeps_no_empty_reply_and_a_rerun_asks_again(server, tmp_path):
    server.responder = by_question({"Patient 1 ": Reply(texts=("",))}, default="Insulin.\nAnswer: B")
    with make_teacher(server, cache_path=tmp_path / "c.sqlite", concurrency=1) as teacher:
        report = teacher.teach(QUESTIONS[:3], n=1)
        assert report.stopped is None and len(report.kept) == 2 and report.dropped["error"] == 1
        assert report.errors[0][0] == "medqa-dev-1" and "sent an empty reply" in report.errors[0][1]
        assert teacher.cache.count() == 2
        server.responder = answer_with("Insulin.\nAnswer: B")
        again = teacher.teach(QUESTIONS[:3], n=1)
    assert len(again.kept) == 3 and again.cached == 2 and server.count == 4


@pytest.mark.parametrize("reply, letter", [
    ("Insulin lowers blood glucose.\n**Answer:** B", "B"),
    ("Insulin lowers blood glucose.\n\n**Final Answer:** B", "B"),
    ("Insulin lowers blood glucose.\nFinal Answer: $\\boxed{B}$", "B"),
    ("<think>Heparin? Answer: C? No.</think>\nInsulin lowers blood glucose.\n**Answer:** B", "B"),
    ("The answer is a hormone that lowers glucose, option B.", "B"),  # "a" is the article, not option A
])
def test_the_app_reads_and_caches_common_answer_formats_and_teach_keeps_them(server, reply, letter):
    server.responder = answer_with(reply)
    with make_teacher(server) as teacher:
        list(teacher.stream_answer(medqa(0)))
        (cached,) = list(teacher.stream_answer(medqa(0)))  # read, so cached: the second ask pays nothing
        assert isinstance(cached, CachedReply) and teacher.answer(medqa(0)).answer == letter
        report = teacher.teach([medqa(1)], n=1)
    assert len(report.kept) == 1 and "Heparin?" not in report.kept[0].text and server.count == 2


# ----------------------------------------------------------------------------- replies cut off at max_tokens

CUT = "Heparin and warfarin thin the blood, so the answer is B because insulin lowers the blo"
"""A reply stopped at max_tokens mid-sentence: its answer reads as B, but the reply never finished."""


def cut_off(text: str = CUT) -> Reply:
    return Reply(texts=(text,), finish_reason="length")


def test_a_reply_cut_off_at_max_tokens_has_no_answer_and_is_not_cached(server):
    server.script(cut_off())
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        cut = teacher.answer(medqa(0))
        assert (cut.text, cut.answer) == (CUT, None) and teacher.cache.count() == 0
        assert teacher.answer(medqa(0)).answer == "B"
        assert teacher.answer(medqa(0)).answer == "B"  # the finished reply is cached
    assert server.count == 2


def test_a_streamed_reply_cut_off_at_max_tokens_is_shown_with_a_notice_but_not_cached(server):
    server.script(cut_off())
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server, max_tokens=64, shown_in="app") as teacher:
        chunks = list(teacher.stream_answer(medqa(0)))
        assert "".join(chunks) == CUT and teacher.cache.count() == 0
        assert isinstance(chunks[-1], CutOffReply) and chunks[-1] == ""
        assert "cut off at its limit of 64 tokens (finish_reason 'length')" in chunks[-1].notice
        assert "Fix: correct it and choose the answer below" in chunks[-1].notice
        fresh = list(teacher.stream_answer(medqa(0)))
        assert not any(isinstance(chunk, (CachedReply, CutOffReply)) for chunk in fresh)
        assert "".join(fresh).endswith("Answer: B") and teacher.cache.count() == 1
    assert server.count == 2


@pytest.mark.parametrize("mode", ["answer", "rationalize"])
def test_a_cut_off_reply_cached_by_an_older_version_is_asked_again(server, mode):
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server) as teacher:
        request = teacher._prepare(medqa(0), mode)
        teacher.cache.put(request.key(teacher.model, 0), CachedSample(CUT, request.sha, "length"))
        if mode == "answer":
            assert "".join(teacher.stream_answer(medqa(0))).endswith("Answer: B")
            assert teacher.answer(medqa(0)).answer == "B"
        else:
            report = teacher.teach([medqa(0)], n=1)
            assert (len(report.kept), report.cached) == (1, 0) and report.kept[0].text != CUT
    assert server.count == 1


def test_teach_drops_a_cut_off_sample_naming_max_tokens_and_a_rerun_asks_again(server, tmp_path):
    server.responder = by_question({"Patient 1 ": cut_off()}, default="Insulin.\nAnswer: B")
    with make_teacher(server, cache_path=tmp_path / "c.sqlite", concurrency=1, max_tokens=64) as teacher:
        report = teacher.teach(QUESTIONS[:3], n=1)
        assert len(report.kept) == 2 and report.dropped["cut off"] == 1 and report.rejected == ()
        assert "medqa-dev-1" not in {r.question_id for r in report.kept} and report.errors == ()
        assert "dropped 1 cut off at --max-tokens 64 (Fix: raise --max-tokens)" in report.summary()
        assert teacher.cache.count() == 2
        server.responder = answer_with("Insulin.\nAnswer: B")
        again = teacher.teach(QUESTIONS[:3], n=1)
    assert len(again.kept) == 3 and again.cached == 2 and server.count == 4


# ----------------------------------------------------------------------------- filtered, reasoning, tool calls

FILTERED_REPLY = "Insulin lowers blood glucose, so the answer is B"


def test_a_reply_stopped_by_the_content_filter_is_dropped_as_filtered_and_never_cached(server, tmp_path):
    server.responder = by_question({"Patient 1 ": Reply(texts=(FILTERED_REPLY,), finish_reason="content_filter"),
                                    "Patient 2 ": Reply(texts=(None,), finish_reason="content_filter")},
                                   default="Insulin.\nAnswer: B")
    with make_teacher(server, cache_path=tmp_path / "c.sqlite", concurrency=1) as teacher:
        report = teacher.teach(QUESTIONS[:3], n=1)
        assert report.dropped["filtered"] == 2 and report.errors == () and len(report.kept) == 1
        assert report.rejected == ()  # not written, even by --all-samples
        assert "dropped 2 filtered (the provider's content filter stopped the reply" in report.summary()
        assert teacher.cache.count() == 1


def test_a_streamed_reply_stopped_by_the_content_filter_says_so_and_is_not_cached(server):
    server.script(Reply(texts=(FILTERED_REPLY,), finish_reason="content_filter"))
    server.responder = answer_with("Insulin lowers blood glucose.\nAnswer: B")
    with make_teacher(server, shown_in="app") as teacher:
        chunks = list(teacher.stream_answer(medqa(0)))
        assert "".join(chunks) == FILTERED_REPLY and isinstance(chunks[-1], CutOffReply)
        assert "content filter stopped the teacher's reply" in chunks[-1].notice
        assert "asking again will not help" in chunks[-1].notice and teacher.cache.count() == 0


NO_TEXT = {
    "filtered": (Reply(texts=(None,), finish_reason="content_filter"),
                 "content filter .* stopped the teacher's reply before it wrote anything.*will not help"),
    "tool call": (Reply(texts=(None,), finish_reason="tool_calls"), "answered with a tool call instead of text"),
    "reasoning only": (Reply(texts=(None,), reasoning="Insulin lowers glucose. Answer: B"),
                       "sent only its reasoning and no reply text"),
    "reasoning to the limit": (Reply(texts=(None,), reasoning="Insulin lowers glucose", finish_reason="length"),
                               ("spent its whole limit of 64 tokens reasoning and wrote no reply.*"
                                "Fix: raise KARD_TEACHER_MAX_TOKENS")),
}


@pytest.mark.parametrize("reply, message", NO_TEXT.values(), ids=NO_TEXT.keys())
def test_a_reply_without_text_says_why_not_a_crash_or_a_proxy(server, reply, message):
    server.script(reply, reply)
    with make_teacher(server, shown_in="app", max_tokens=64) as teacher:
        with pytest.raises(TeacherIncompleteError, match=message) as streamed:
            list(teacher.stream_answer(medqa(0)))
        assert "a crash or a proxy" not in str(streamed.value)
        if reply.finish_reason == "stop":  # teach gives up on the question with the same message
            with pytest.raises(TeacherIncompleteError, match=message):
                teacher.rationalize(medqa(0), n=1)
        assert teacher.cache.count() == 0


def test_teach_counts_a_reasoning_model_out_of_tokens_as_cut_off(server, caplog):
    server.responder = by_question({"Patient 1 ": Reply(texts=(None,), reasoning="Insulin...", finish_reason="length")},
                                   default="Insulin.\nAnswer: B")
    with make_teacher(server, concurrency=1, max_tokens=64) as teacher:
        report = teacher.teach(QUESTIONS[:2], n=1)
    assert report.dropped["cut off"] == 1 and report.errors == () and len(report.kept) == 1
    assert "spent its whole limit of 64 tokens reasoning" in caplog.text and "raise --max-tokens" in caplog.text


# ----------------------------------------------------------------------------- the key never leaks


def test_api_key_never_reaches_logs_errors_cache_or_outputs(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    failing = Reply(status=500, error=f"echoing {KEY}", headers={"retry-after-ms": "1"})
    server.responder = by_question({"Patient 5 ": failing}, default="Insulin.\nAnswer: B")
    cache = tmp_path / "teacher.sqlite"
    messages = []
    with make_teacher(server, cache) as teacher:
        report = teacher.teach(QUESTIONS, n=2)
        try:
            teacher.rationalize(medqa(5), n=1)
        except KardError as error:
            messages.append(str(error))
    with FakeOpenAI(api_key="another-key") as strict:
        try:
            make_teacher(strict).answer(medqa(0))
        except KardError as error:
            messages.append(str(error))
    out = tmp_path / "out.jsonl"
    out.write_text("\n".join(json.dumps(r.__dict__) for r in report.kept))
    assert report.errors and len(messages) == 2
    everything = [caplog.text, repr(report), report.summary(), *messages, out.read_text()]
    everything += [p.read_bytes().decode("utf-8", "replace") for p in Path(tmp_path).glob("teacher.sqlite*")]
    assert all(KEY not in text for text in everything)
    assert "***" in messages[0]  # the server echoed the key; the message shows it masked


def test_credentials_in_the_base_url_never_reach_messages_logs_or_the_output(tmp_path, monkeypatch, capsys, caplog):
    caplog.set_level(logging.INFO, logger="httpx2")  # the HTTP client logs every request's URL at INFO
    with FakeOpenAI() as open_server:
        url = open_server.url.replace("http://", "http://user:hunter2pass@")
        echo = f"down; you sent Basic {base64.b64encode(b'user:hunter2pass').decode()}"  # a server echoing the auth
        open_server.script(status(500, echo), status(500, echo))
        open_server.responder = answer_with("Insulin.\nAnswer: B")
        config = TeacherConfig(model="m", base_url=url, max_retries=1, timeout_s=5.0)
        with Teacher(config, cache_path=None, api_key=KEY) as teacher:
            assert teacher.where == open_server.url.replace("http://", "http://***@")
            with pytest.raises(TeacherServerError) as failed:
                teacher.rationalize(medqa(0), n=1)
            assert teacher.rationalize(medqa(0), n=1)[0].answer == "B"
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        run_cli("teach", "--dataset", "demo", "--base-url", url, "--model", "m", "--limit", "1", "--n", "1",
                "--out", str(tmp_path / "o.jsonl"), "--cache", str(tmp_path / "c.sqlite"), "--no-progress")
    printed = capsys.readouterr()
    assert "HTTP Request: POST http://***@127.0.0.1" in caplog.text and "at http://***@127.0.0.1" in printed.out
    assert "http://***@127.0.0.1" in str(failed.value)
    shown = (str(failed.value), caplog.text, printed.out, printed.err)
    assert all("hunter2pass" not in text and "dXNlcjpodW50ZXIycGFzcw" not in text for text in shown)


def test_a_200_error_reply_echoing_the_urls_password_is_masked_in_the_retry_log(caplog):
    caplog.set_level(logging.INFO, logger="kard.teacher.client")
    with FakeOpenAI() as open_server:
        url = open_server.url.replace("http://", "http://user:hunter2pass@")
        open_server.script(raw_body(json.dumps({"error": {"message": "provider said no to hunter2pass"}})))
        open_server.responder = answer_with("Insulin.\nAnswer: B")
        config = TeacherConfig(model="m", base_url=url, max_retries=1, timeout_s=5.0)
        with Teacher(config, cache_path=None, api_key=KEY) as teacher:
            assert teacher.rationalize(medqa(0), n=1)[0].answer == "B"
    assert "answered with an error (provider said no to " in caplog.text and "retrying" in caplog.text
    assert "hunter2pass" not in caplog.text


# ----------------------------------------------------------------------------- command line


def run_cli(*argv: str) -> int:
    from kard.__main__ import main

    return main(list(argv))


def test_cli_teach_demo_end_to_end(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def gold_or_not(body: dict) -> Reply:
        asked = last_user_message(body)
        gold = asked.split("Correct answer: ")[1][0]
        return Reply(texts=(f"Reasoning.\nAnswer: {gold}", "Unsure, perhaps.")[: int(body.get("n") or 1)])

    server.responder = gold_or_not
    out, cache = tmp_path / "demo.jsonl", tmp_path / "cache.sqlite"
    args = [
        "teach",
        "--dataset",
        "demo",
        "--base-url",
        server.url,
        "--model",
        "fake",
        "--n",
        "2",
        "--limit",
        "5",
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--no-progress",
        "--max-retries",
        "0",
    ]
    assert run_cli(*args) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and {r["sample_index"] for r in rows} == {0}
    assert all(r["text"] == "Reasoning." and r["source"] == "fake (teacher-v1/rationalize)" for r in rows)
    assert "kept 5, dropped 5 no answer" in printed and "5 requests" in printed
    assert run_cli(*args, "--all-samples") == 0  # second run: all from the cache
    assert "10 from cache, 0 requests" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 10 and server.count == 5
    assert KEY not in printed and KEY not in out.read_text()


def test_cli_teach_reports_given_up_questions_and_bad_key(server, tmp_path, monkeypatch, capsys):
    from kard.datasets import load_demo_questions

    first = load_demo_questions()[0]
    server.responder = by_question({first.text: status(503, "overloaded")}, default="Fine.\nAnswer: A")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    common = [
        "teach",
        "--dataset",
        "demo",
        "--base-url",
        server.url,
        "--limit",
        "3",
        "--no-progress",
        "--max-retries",
        "1",
        "--cache",
        str(tmp_path / "c.sqlite"),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    assert run_cli(*common) == 1
    printed = capsys.readouterr().out
    assert f"gave up on {first.id}" in printed and "HTTP 503" in printed
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key")
    assert (
        run_cli(*common[:-4], "--cache", str(tmp_path / "d.sqlite"), "--out", str(tmp_path / "p.jsonl")) == 2
    )
    assert "check OPENAI_API_KEY" in capsys.readouterr().err


def test_cli_teach_stopped_job_leaves_an_earlier_out_file_as_it_was(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key")  # the server answers 401: the job stops
    out = tmp_path / "out.jsonl"
    earlier = json.dumps({"question_id": "demo-q-med-01", "text": "Kept.", "answer": "A"}) + "\n"
    out.write_text(earlier)
    code = run_cli("teach", "--dataset", "demo", "--limit", "2", "--base-url", server.url, "--no-progress",
                   "--cache", str(tmp_path / "c.sqlite"), "--out", str(out))
    assert code == 2 and out.read_text() == earlier
    assert f"{out} was left as it was" in capsys.readouterr().err


EARLIER_RATIONALES = "".join(json.dumps({"question_id": f"demo-q-med-0{i}", "text": "Kept.", "answer": "A"}) + "\n"
                             for i in range(1, 7))


def _teach_over_earlier_out(server, tmp_path, monkeypatch, *extra: str) -> tuple[int, Path]:
    """`teach` into an --out that already holds six rationales; (exit code, --out)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "r.jsonl"
    out.write_text(EARLIER_RATIONALES)
    code = run_cli("teach", "--dataset", "demo", "--limit", "2", "--n", "2", "--max-retries", "1", "--base-url",
                   server.url, "--no-progress", "--cache", str(tmp_path / "new.sqlite"), "--out", str(out), *extra)
    return code, out


@pytest.mark.parametrize("failure", [status(429, "slow down"), status(500, "broken")])
def test_cli_teach_failing_on_every_question_leaves_an_earlier_out_as_it_was(server, tmp_path, monkeypatch, capsys,
                                                                            failure):
    server.responder = lambda body: failure
    code, out = _teach_over_earlier_out(server, tmp_path, monkeypatch)
    said = capsys.readouterr()
    assert code == 1 and out.read_text() == EARLIER_RATIONALES
    assert "wrote 0" not in said.out
    assert f"no rationale was kept for {out}, so it was left as it was: the teacher failed on every question" \
        in said.err and "Fix: check the server" in said.err


def test_cli_teach_keeping_no_reply_without_an_answer_fails_with_the_fix(server, tmp_path, monkeypatch, capsys):
    server.responder = answer_with("I would rather not say.")
    code, out = _teach_over_earlier_out(server, tmp_path, monkeypatch)
    said = capsys.readouterr()
    assert code == 1 and out.read_text() == EARLIER_RATIONALES
    assert "kept 0, dropped 4 no answer" in said.out and "wrote" not in said.out
    assert "the teacher's replies have no 'Answer: X' line naming one option. Fix: check the model or the prompt" \
        in said.err


def test_cli_teach_with_all_samples_writes_the_dropped_ones_but_still_fails(server, tmp_path, monkeypatch, capsys):
    server.responder = answer_with("I would rather not say.")
    code, out = _teach_over_earlier_out(server, tmp_path, monkeypatch, "--all-samples")
    assert code == 1 and len(out.read_text().splitlines()) == 4
    assert "only the dropped replies were written to it (--all-samples)" in capsys.readouterr().err


def test_cli_teach_whose_replies_are_all_cut_off_names_max_tokens_and_writes_none(server, tmp_path, monkeypatch,
                                                                                  capsys):
    server.responder = lambda body: cut_off(f"So the answer is {last_user_message(body).split('answer: ')[1][0]} bec")
    code, out = _teach_over_earlier_out(server, tmp_path, monkeypatch, "--all-samples", "--max-tokens", "64")
    said = capsys.readouterr()
    assert code == 1 and out.read_text() == EARLIER_RATIONALES
    assert "kept 0, dropped 4 cut off at --max-tokens 64 (Fix: raise --max-tokens)" in said.out
    assert "the teacher's replies were cut off at --max-tokens 64, before they finished. Fix: raise --max-tokens" \
        in said.err


def test_cli_teach_refuses_limit_0_before_anything(server, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:
        _teach_over_earlier_out(server, tmp_path, monkeypatch, "--limit", "0")
    assert exit_.value.code == 2 and server.count == 0
    assert (tmp_path / "r.jsonl").read_text() == EARLIER_RATIONALES
    assert "argument --limit: '0' is not a whole number, 1 or more. Fix:" in capsys.readouterr().err


def test_cli_teach_refuses_questions_without_any_gold_answer(server, tmp_path, monkeypatch, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": "Why?", "options": {"A": "x", "B": "y"}}) + "\n")
    code, out = _teach_over_earlier_out(server, tmp_path, monkeypatch, "--path", str(questions))
    assert code == 2 and server.count == 0 and out.read_text() == EARLIER_RATIONALES
    assert "none of the 1 questions has a gold answer. Fix:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["teach", "import-rationales"])
@pytest.mark.parametrize("bad_out", ["a folder", "under a file"])
def test_cli_unwritable_out_is_refused_before_any_work(server, tmp_path, monkeypatch, capsys, command, bad_out):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (tmp_path / "a-file").write_text("")
    out = tmp_path if bad_out == "a folder" else tmp_path / "a-file" / "o.jsonl"
    recorded = tmp_path / "r.jsonl"
    recorded.write_text(json.dumps({"question_id": "q1", "rationale": "R.", "answer": "A"}) + "\n")
    argv = {
        "teach": ["teach", "--dataset", "demo", "--limit", "2", "--base-url", server.url, "--no-progress",
                  "--cache", str(tmp_path / "c.sqlite")],
        "import-rationales": ["import-rationales", "--kind", "jsonl", "--path", str(recorded)],
    }[command]
    assert run_cli(*argv, "--out", str(out)) == 2
    error = capsys.readouterr().err
    assert f"--out {out}" in error and "Fix: pass" in error
    assert server.count == 0  # nothing asked, nothing paid


def test_cli_import_rationales_jsonl_names_the_line_of_an_unknown_answer_letter(tmp_path, capsys):
    from kard.config import DEMO_QUESTIONS
    from kard.datasets import load_demo_questions

    first = load_demo_questions()[0]
    recorded, out = tmp_path / "r.jsonl", tmp_path / "o.jsonl"
    recorded.write_text(
        json.dumps({"question_id": first.id, "rationale": "R1.", "answer": first.answer})
        + "\n"
        + json.dumps({"question_id": first.id, "rationale": "R2.", "answer": "Q"})
        + "\n"
    )
    argv = ["import-rationales", "--kind", "jsonl", "--path", str(recorded), "--questions", str(DEMO_QUESTIONS)]
    assert run_cli(*argv, "--out", str(out)) == 0
    assert "line 2: bad record: answer 'Q' is not among the options" in capsys.readouterr().out
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["R1."]


def test_cli_import_rationales_medqa_gpt4(shared_data, tmp_path, capsys):
    out = tmp_path / "gpt4.jsonl"
    code = run_cli(
        "import-rationales",
        "--kind",
        "medqa-gpt4",
        "--path",
        str(shared_data / "medqa" / "dev_teacher_cot_gpt-4-32k.jsonl"),
        "--questions",
        str(shared_data / "medqa" / "dev.jsonl"),
        "--only-correct",
        "--out",
        str(out),
    )
    assert code == 0
    assert "answers matching the gold: 516 of 636 questions (81.13 %)" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 516 and {r["source"] for r in rows} == {"gpt-4-32k (recorded, MIRAGE)"}


# ----------------------------------------------------------------------------- a single-stream server


def test_default_job_finishes_against_a_server_that_answers_one_request_at_a_time():
    """Like transformers serve or llama.cpp's server: each reply takes 1 s and the others wait. With the
    default 4 requests at once and a 2.5 s timeout, the 4th would time out and be sent again while the
    server still works on it; the teacher learns to send them one or two at a time instead."""
    from fake_openai_server import Reply

    questions = [medqa(i, gold="A") for i in range(6)]
    with FakeOpenAI(api_key=KEY) as slow:
        slow.single_stream = True
        slow.responder = lambda body: Reply(texts=("It follows.\nAnswer: A",), delay_s=1.0)
        with make_teacher(slow, concurrency=4, timeout_s=2.5, max_retries=2) as teacher:
            report = teacher.teach(questions, n=1)
        assert not report.errors and len(report.kept) == 6
        assert slow.count == 6  # every question asked once: nothing sent again while it was being served
        assert slow.max_in_flight <= 2


def test_teacher_settings_from_env_ignore_overrides_not_given(monkeypatch):
    monkeypatch.setenv("KARD_TEACHER_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    config = TeacherConfig.from_env(model=None, base_url=None, temperature=None, samples=3)
    assert (config.model, config.base_url, config.samples) == ("env-model", "http://127.0.0.1:9/v1", 3)
    assert config.temperature == TeacherConfig().temperature  # None = not given, as in AppConfig.from_env
    assert TeacherConfig.from_env(model="flag-model").model == "flag-model"


# ----------------------------------------------------------------------------- the app's live teacher


def test_the_apps_live_teacher_has_a_short_budget_set_by_env(monkeypatch):
    for name in ("KARD_TEACHER_TIMEOUT", "KARD_TEACHER_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    config = TeacherConfig.for_app()
    assert (config.timeout_s, config.max_retries, config.shown_in) == (30.0, 1, "app")
    assert (TeacherConfig.from_env().timeout_s, TeacherConfig.from_env().shown_in) == (60.0, "cli")  # teach's
    monkeypatch.setenv("KARD_TEACHER_TIMEOUT", "12.5")
    monkeypatch.setenv("KARD_TEACHER_RETRIES", "0")
    assert (TeacherConfig.for_app().timeout_s, TeacherConfig.for_app().max_retries) == (12.5, 0)
    for name, bad in (("KARD_TEACHER_TIMEOUT", "soon"), ("KARD_TEACHER_TIMEOUT", "0"), ("KARD_TEACHER_RETRIES", "-1")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(KardError, match=f"{name}='{bad}' .*Fix: set {name} to"):
            TeacherConfig.for_app()
        monkeypatch.setenv(name, "1")


def test_the_app_gives_up_on_a_hanging_teacher_soon_and_names_its_env_fix(server, tmp_path, monkeypatch):
    import app

    server.responder = lambda body: Reply(texts=("Late.\nAnswer: B",), delay_s=1.0)
    for name, value in (("OPENAI_BASE_URL", server.url), ("OPENAI_API_KEY", KEY), ("KARD_CACHE", str(tmp_path)),
                        ("KARD_TEACHER_MODEL", "fake-teacher"), ("KARD_TEACHER_TIMEOUT", "0.2")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KARD_TEACHER_RETRIES", raising=False)
    teacher = app.default_teacher_factory()()
    with teacher, pytest.raises(TeacherTimeoutError, match="within 0.2 s \\(1 retry\\)") as raised:
        list(teacher.stream_answer(medqa(0)))
    assert server.count == 2 and "raise KARD_TEACHER_TIMEOUT" in str(raised.value)
    assert "--timeout" not in str(raised.value) and "rerun" not in str(raised.value)


@pytest.mark.parametrize("shown_in", ["app", "cli"])
@pytest.mark.parametrize("code", [429, 500])
def test_rate_limit_and_server_errors_name_the_fix_where_they_are_shown(server, shown_in, code):
    server.responder = lambda body: status(code)
    with make_teacher(server, max_retries=0, shown_in=shown_in) as teacher, pytest.raises(KardError) as raised:
        list(teacher.stream_answer(medqa(0)))
    message = str(raised.value)
    if shown_in == "app":
        assert "ask again" in message and "--" not in message and "rerun" not in message
    else:
        assert "rerunning the same job resumes" in message and ("--concurrency" in message) == (code == 429)


def test_a_fatal_error_stops_the_workers_before_the_next_question_however_slow_the_job_is_to_see_it(
        server, tmp_path, monkeypatch):
    """On a loaded machine the job's thread saw the read-only cache's error late, and its one worker had already
    asked the server for the next questions; the worker that meets a fatal error now stops the job itself."""
    import time

    import kard.teacher.client as client

    real_wait = client.wait
    monkeypatch.setattr(client, "wait", lambda *a, **k: (time.sleep(0.5), real_wait(*a, **k))[1])
    server.responder = answer_with("Insulin.\nAnswer: B")
    with make_teacher(server, tmp_path / "teacher.sqlite", concurrency=1) as teacher:
        teacher.cache._db.execute("PRAGMA query_only = ON")
        report = teacher.teach(QUESTIONS, n=1)
    assert report.stopped and "is read-only" in report.stopped
    assert server.count == 1  # the first question's request only

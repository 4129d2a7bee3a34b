"""The app's named endpoints (ask, compare, save) through gradio_client against a launched server."""

from __future__ import annotations

import pytest

gradio_client = pytest.importorskip("gradio_client")

from app_fixtures import GRADIO_PANDAS_NOISE, PASSWORD, QUESTIONS, USER, launched, tiny_pipeline  # noqa: E402

NO_MARKS = [None] * 5
pytestmark = GRADIO_PANDAS_NOISE


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-api")
    pipeline = tiny_pipeline(folder)
    with launched(lambda: pipeline, folder) as (url, studio):
        yield url, studio


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server[0], auth=(USER, PASSWORD), verbose=False)


def ask(client, question=QUESTIONS[0]):
    from kard.prompts import format_options

    return client.predict(question.text, format_options(question.options), question.id, api_name="/ask")


def test_named_endpoints(client):
    assert {"/ask", "/compare", "/save"} <= set(client.view_api(return_format="dict")["named_endpoints"])


def test_ask_compare_save_round_trip(client, server):
    rerank, student, status, item, _ = ask(client)
    assert "BM25 only, no reranker loaded" in rerank and 'data-passage-id="graves"' in rerank
    assert "<img" not in rerank and "<script" not in rerank and "&lt;script&gt;" in rerank
    assert 'class="kard-card kard-student"' in student and "answered in" in status
    assert item["item_id"] == "demo:t-graves" and len(item["used_ids"]) == 2

    compared = client.predict(item, api_name="/compare")
    teacher, editor, item = compared[1], compared[3], compared[9]
    assert "recorded · written by the test authors" in teacher
    assert editor.startswith("Graves disease is caused by antibodies")

    saved = client.predict(item, editor + " Checked.", "A", 4, ["other"], "relevant", "irrelevant", None, None, None,
                           "api test", False, editor, "recorded", api_name="/save")
    assert "Saved revision" in saved[0]
    revision = server[1].store.get("demo:t-graves")
    c = revision.correction
    assert (c.curator, c.answer, c.rating, c.tags, c.note) == (USER, "A", 4, ("other",), "api test")
    assert c.rationale.endswith("Checked.") and c.original_rationale == editor
    assert c.student_model == "tiny-student" and c.prompt_version == "kard-v1" and c.decoding["max_new_tokens"] == 24
    assert list(c.relevance.values()) == ["relevant", "irrelevant"]


def test_save_before_asking_gives_a_message(client):
    out = client.predict(None, "text", "A", 3, [], *NO_MARKS, "", False, "", "", api_name="/save")
    assert "Ask a question first" in out[0]


def test_mismatched_answer_asks_for_confirmation(client, server):
    item = ask(client, QUESTIONS[1])[3]
    before = server[1].store.count()
    out = client.predict(item, "Vitamin D is the one. Answer: B", "A", 3, [], *NO_MARKS, "", False, "", "",
                         api_name="/save")
    assert "concludes B but you chose A" in out[0] and server[1].store.count() == before
    out = client.predict(item, "Vitamin D is the one. Answer: B", "A", 3, [], *NO_MARKS, "", True, "", "",
                         api_name="/save")
    assert "Saved revision" in out[0] and server[1].store.count() == before + 1


@pytest.mark.parametrize("text, options, expected", [
    ("", "A) x B) y", "question is empty"),
    ("x" * 20_000, "A) x B) y", "20,000 characters"),
    ("Which one?", "nothing here", "Could not read the options"),
])
def test_bad_questions_give_messages(client, text, options, expected):
    assert expected in client.predict(text, options, None, api_name="/ask")[2]


def test_wrong_password_is_refused(server):
    with pytest.raises(Exception):
        gradio_client.Client(server[0], auth=(USER, "wrong"), verbose=False)


def test_free_questions_through_the_api(client, server):
    rerank, student, status, item, _ = client.predict("Is scurvy caused by a lack of vitamin C?", "", None, "auto",
                                                      api_name="/ask")
    assert item["question"]["kind"] == "yesno" and item["student"]["answer"] in ("A", "B")
    assert "Asked as: <b>yes/no question</b>" in student and "Asked as: yes/no question." in status
    assert 'data-passage-id="scurvy"' in rerank
    item = client.predict("Which vitamin does the body lack in scurvy?", "", None, "open", api_name="/ask")[3]
    assert item["question"]["kind"] == "open" and item["question"]["options"] == {}
    item = client.predict(item, api_name="/compare")[9]
    saved = client.predict(item, "Scurvy is a lack of vitamin C.\nAnswer: vitamin C", None, 4, [], *NO_MARKS,
                           "", False, "", "", "vitamin C", api_name="/save")
    assert "Saved revision 1" in saved[0]
    c = server[1].store.get(item["item_id"]).correction
    assert (c.kind, c.answer, c.options) == ("open", "vitamin C", {})
    # options typed after the question, the options box empty: asked as multiple choice, the stem as its text
    _, student, _, item, _ = client.predict("Which vitamin prevents scurvy?\nA) vitamin C\nB) vitamin D", "", None,
                                            "auto", api_name="/ask")
    assert item["question"]["kind"] == "choice" and item["question"]["text"] == "Which vitamin prevents scurvy?"
    assert item["question"]["options"] == {"A": "vitamin C", "B": "vitamin D"}
    assert "options read from the question" in student


def test_save_stores_only_items_this_server_produced(client, server):
    _, _, _, item, _ = ask(client)
    compared = client.predict(item, api_name="/compare")
    editor, item = compared[3], compared[9]
    before = server[1].store.get(item["item_id"])

    def save(sent):
        return client.predict(sent, editor, "A", 4, [], None, None, None, None, None, "forged?", False, editor,
                              "recorded", api_name="/save")[0]

    forged = {**item, "question": {**item["question"], "text": "Is the moon made of cheese?", "answer": "B"}}
    assert "not produced by this app" in save(forged)
    malformed = {k: v for k, v in item.items() if k != "used"}
    assert "not produced by this app" in save(malformed)
    assert "not produced by this app" in save({**item, "seal": "0" * 64})
    after = server[1].store.get(item["item_id"])
    assert (after.revision if after else None) == (before.revision if before else None)  # nothing stored
    assert "Saved revision" in save(item)  # the untouched item still saves


def test_a_fresh_client_can_ask_and_save_without_compare(server):
    fresh = gradio_client.Client(server[0], auth=(USER, PASSWORD), verbose=False)
    _, _, _, item, _ = ask(fresh)
    saved = fresh.predict(item, "Graves disease: antibodies stimulate the TSH receptor. Answer: A", "A", 5, [], None,
                          None, None, None, None, "fresh client", False, "", "", api_name="/save")
    assert "Saved revision" in saved[0], saved[0]
    assert server[1].store.get(item["item_id"]).correction.note == "fresh client"


def test_oversized_note_or_rationale_is_refused_through_the_api(client, server):
    _, _, _, item, _ = ask(client)
    before = server[1].store.count()
    for rationale, note, limit in (("Graves. Answer: A", "n" * 1_000_000, "the limit is 2,000"),
                                   ("x" * 1_000_000, "", "the limit is 8,000")):
        saved = client.predict(item, rationale, "A", 4, [], None, None, None, None, None, note, False, "", "",
                               api_name="/save")[0]
        assert limit in saved
    assert server[1].store.count() == before  # nothing stored


def test_the_rating_as_view_api_documents_it_saves_and_a_bad_one_is_one_line(client, server, capfd):
    _, _, _, item, _ = ask(client)
    saved = client.predict(item, "Graves disease: antibodies stimulate the TSH receptor. Answer: A", "A", "4", [],
                           *NO_MARKS, "", False, "", "", api_name="/save")
    assert "Saved revision" in saved[0] and server[1].store.get(item["item_id"]).correction.rating == 4
    capfd.readouterr()
    with pytest.raises(Exception, match="Rating of the student's rationale .*Value: 9"):
        client.predict(item, "Graves. Answer: A", "A", "9", [], *NO_MARKS, "", False, "", "", api_name="/save")
    assert "Traceback" not in capfd.readouterr().err

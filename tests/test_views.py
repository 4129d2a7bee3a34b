"""HTML views: escaping, highlighting, the rerank panel's ranks and cut line, word diffs, badges."""

from __future__ import annotations

import re

from kard.annotations import Correction, Revision
from kard.records import Hit, Passage, Timings
from kard.ui import views
from kard.ui.views import (
    answer_badge,
    answer_label,
    kind_line,
    diff_panel,
    highlight,
    history_panel,
    query_terms,
    rationale_card,
    rerank_panel,
    timing_line,
    word_diff,
)

XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def hits(reranked: bool = True) -> list[Hit]:
    passages = [Passage("p1", "Scurvy", "Scurvy is caused by vitamin C deficiency."),
                Passage("p2", "Rickets", "Rickets follows vitamin D deficiency in children."),
                Passage("p3", "Evil", XSS)]
    found = [Hit(p, score, rank) for rank, (p, score) in enumerate(zip(passages, [5.5, 3.25, 1.0]), start=1)]
    if not reranked:
        return found
    # the reranker moves p2 to the top, p1 down one, p3 stays last
    return [found[1].with_rerank(0.9, 1), found[0].with_rerank(0.4, 2), found[2].with_rerank(-1.0, 3)]


def test_query_terms_are_the_terms_bm25_searches_with():
    from kard.knowledge import tokenize

    text = "Which vitamin deficiency causes scurvy? Which vitamins?"
    assert query_terms(text) == ["vitamin", "deficiency", "cause", "scurvy"]  # stopwords out, plurals folded
    assert set(query_terms(text)) == set(tokenize(text))


def test_highlight_marks_the_words_bm25_matched_and_escapes_the_rest():
    out = highlight("Vitamin C <b>vitamins</b> & vitaminic", ["vitamin"])
    assert out == "<mark>Vitamin</mark> C &lt;b&gt;<mark>vitamins</mark>&lt;/b&gt; &amp; vitaminic"
    assert highlight("<x>", []) == "&lt;x&gt;"


def test_highlight_cannot_be_turned_into_markup_by_terms():
    out = highlight("a <script> b", ["script"])
    assert out == "a &lt;<mark>script</mark>&gt; b"


def test_rerank_panel_shows_both_rankings_moves_and_cut_line():
    out = rerank_panel(hits(), ["p2", "p1"], "Which vitamin deficiency causes rickets?", reranker_name="minilm-kard")
    assert "Reranked by <b>minilm-kard</b>" in out
    rows = re.findall(r'<tr class="kard-(used|unused|cut)"', out)
    assert rows == ["used", "used", "cut", "unused"]
    p2_row = out[out.index('data-passage-id="p2"'):out.index('data-passage-id="p1"')]
    cells = re.findall(r'<td class="kard-num" data-label="[^"]*">(.*?)</td>', p2_row)
    assert cells[:5] == ["1", "2", "3.25", "1", "0.90"] and "&#9650;1" in cells[5]
    p1_row = out[out.index('data-passage-id="p1"'):]
    assert "&#9660;1" in p1_row
    assert "top-2 above this line went to the student" in out
    assert "<mark>Rickets</mark>" in out and "<mark>vitamin</mark>" in out


def test_rerank_panel_labels_each_number_with_its_column_for_a_phone():
    # on a narrow page the header row is hidden (CSS) and each number shows its own label instead
    for reranked, columns in ((True, ["#", "BM25 rank", "BM25 score", "reranker rank", "reranker score", "move"]),
                              (False, ["#", "BM25 rank", "BM25 score"])):
        out = rerank_panel(hits(reranked), ["p1"], "vitamin", reranker_name="r" if reranked else None)
        first_row = out[out.index("<tbody>"):out.index("</tr>", out.index("<tbody>"))]
        assert re.findall(r'data-label="([^"]*)"', first_row) == columns
        assert '<td class="kard-passage">' in first_row
    assert "@media (max-width: 640px)" in views.CSS and "attr(data-label)" in views.CSS


def test_rerank_panel_lists_candidates_in_the_order_the_student_took_them():
    question = "Which vitamin deficiency causes rickets?"
    bm25_order = sorted(hits(), key=lambda h: h.bm25_rank)  # how the pipeline keeps its candidates
    assert rerank_panel(bm25_order, ["p2", "p1"], question, reranker_name="r") == \
        rerank_panel(hits(), ["p2", "p1"], question, reranker_name="r")
    out = rerank_panel(bm25_order, ["p2"], question, reranker_name="r")
    assert re.findall(r'data-passage-id="(p\d)"', out) == ["p2", "p1", "p3"]
    assert re.findall(r'<tr class="kard-(used|unused|cut)"', out) == ["used", "cut", "unused", "unused"]


def test_rerank_panel_says_how_many_candidates_were_found_and_kept():
    question = "vitamin"
    assert "3 candidates &middot;" in rerank_panel(hits(), ["p2"], question, reranker_name="r")
    assert "100 candidates, the first 3 kept" in rerank_panel(hits(), ["p2"], question, reranker_name="r", searched=100)
    assert "3 candidates &middot;" in rerank_panel(hits(), ["p2"], question, reranker_name="r", searched=3)


def test_rerank_panel_without_reranker_says_so():
    out = rerank_panel(hits(reranked=False), ["p1"], "vitamin C")
    assert "BM25 only, no reranker loaded" in out
    assert "reranker rank" not in out and "&#9650;" not in out


def test_rerank_panel_escapes_passages():
    out = rerank_panel(hits(), ["p2"], "onerror script img")
    assert "<img" not in out and "<script" not in out
    assert "&lt;<mark>img</mark> src=x" in out and "&lt;<mark>script</mark>&gt;" in out


def test_rerank_panel_caps_rows_and_handles_no_candidates():
    many = [Hit(Passage(f"p{i}", "", f"text {i}"), 10.0 - i, i + 1) for i in range(30)]
    out = rerank_panel(many, ["p0", "p1"], "text", max_rows=5)
    assert out.count("data-passage-id") == 5 and "25 more candidates not shown" in out
    assert "No passage matched" in rerank_panel([], [], "anything")


def test_word_diff_marks_changed_words_only():
    out = word_diff("the cat sat on the mat", "the dog sat on the mat")
    assert out == '<div class="kard-diff">the <del>cat</del> <ins>dog</ins> sat on the mat</div>'
    assert "&lt;script&gt;" in word_diff("a", "a <script>")
    assert "<script>" not in word_diff("<script>", "b")


def test_diff_panel_labels_and_empty_sides():
    out = diff_panel("one two three", "one two four", "teacher", "student <x>")
    assert "67% of words shared" in out and "student &lt;x&gt;" in out and "Word diff" in out
    assert "Nothing to compare" in diff_panel("", "text", "a", "b")


def test_answer_badges():
    options = {"A": "Vitamin C", "B": "Vitamin <D>"}
    assert "matches gold" in answer_badge("A", "A", options) and "kard-ok" in answer_badge("A", "A", options)
    wrong = answer_badge("B", "A", options)
    assert "kard-bad" in wrong and "gold is A. Vitamin C" in wrong and "Vitamin &lt;D&gt;" in wrong
    assert "no gold" in answer_badge("A", None, options)
    assert "no answer found" in answer_badge(None, "A", options)


def test_timing_line_reports_what_was_measured():
    t = Timings(retrieval_s=0.01, first_token_s=0.5, generation_s=2.0, total_s=2.1)
    assert timing_line(t, 64, "SmolLM2") == ('<div class="kard-timing"><b>SmolLM2</b> &middot; first token 0.50 s '
                                             "&middot; total 2.10 s &middot; 32.0 tokens/s</div>")
    assert "tokens/s" not in timing_line(Timings(total_s=1.0), 0, "")


def test_rationale_card_escapes_and_streams():
    card = rationale_card("Student", "model <m>", XSS, streaming=True)
    assert "<img" not in card and "<script" not in card and "kard-cursor" in card and "model &lt;m&gt;" in card
    assert "configure" in rationale_card("Teacher", "none", "", note="configure a teacher")


def test_rationale_card_shows_an_escaped_notice_above_the_rationale():
    card = rationale_card("Teacher", "recorded", "Because. Answer: A", notice="the live teacher failed: " + XSS)
    assert "kard-card-notice" in card and "the live teacher failed: &lt;img" in card and "<img" not in card
    assert card.index("kard-card-notice") < card.index("kard-rationale")
    assert "kard-card-notice" not in rationale_card("Teacher", "recorded", "Because.")


def test_history_panel_newest_first_with_diffs():
    base = Correction(item_id="i", question_id="q", question="Q", options={"A": "x", "B": "y"},
                      rationale="first text", answer="A", curator="alice", note=XSS)
    revs = [Revision(1, 1, "t1", "save", None, base),
            Revision(2, 2, "t2", "save", None, Correction(**{**base.__dict__, "rationale": "second text", "curator": "bob"})),
            Revision(3, 3, "t3", "revert", 1, Correction(**{**base.__dict__, "curator": "carol"}))]
    out = history_panel(revs)
    assert out.index("<b>r3</b>") < out.index("<b>r2</b>") < out.index("<b>r1</b>")
    assert "reverted to r1" in out and "<del>first</del> <ins>second</ins>" in out
    assert "<img" not in out and "&lt;img" in out
    assert "No saved revisions" in history_panel([])


def test_yes_no_and_open_answers_show_as_words_never_letters():
    yes_no = {"A": "yes", "B": "no"}
    assert ">yes &middot; no gold<" in answer_badge("A", None, yes_no, "yesno")
    wrong = answer_badge("B", "A", yes_no, "yesno")
    assert ">no &#10007; gold is yes<" in wrong and "A." not in wrong and "B." not in wrong
    assert "matches gold" in answer_badge("The Sun.", "sun", {}, "open")  # open answers compare as words
    assert "gold is vitamin &lt;C&gt;" in answer_badge("iron", "vitamin <C>", {}, "open")
    assert [answer_label("B", yes_no, "yesno"), answer_label("Mercury", {}, "open"), answer_label("B", yes_no)] == \
        ["no", "Mercury", "B. no"]


def test_a_yes_no_kind_line_says_what_the_students_letters_mean():
    # the student reads a yes/no question with the options A. yes, B. no and writes "Answer: A" (its raw output)
    line = kind_line("yesno", "no options, and it starts with 'Can'")
    assert "&quot;Answer: A&quot; means yes, &quot;Answer: B&quot; means no" in line
    assert "Answer: A" not in kind_line("choice") and "Answer:" not in kind_line("open")


def test_kind_line_says_how_the_question_was_asked_and_escapes():
    line = kind_line("open", "no options, and it starts with '<b>'")
    assert "Asked as: <b>open question</b>" in line and "&lt;b&gt;" in line and "Ask as" in line
    assert "multiple choice" in kind_line("choice") and "yes/no question" in kind_line("yesno")
    card = rationale_card("Student", "m", "text", kind_html=kind_line("yesno"))
    assert card.index("Asked as") < card.index("kard-rationale")


def test_paths_on_the_page_are_shown_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert views.shown_path(tmp_path / "demo" / "student") == "demo/student"  # not where the checkout lies
    assert views.shown_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    outside = tmp_path.parent / "elsewhere"
    assert views.shown_path(outside) == str(outside)

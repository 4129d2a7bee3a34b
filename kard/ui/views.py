"""HTML views of KARD records for the app: pure functions from data to escaped HTML strings.

Every text that comes from passages, models or annotations is untrusted: it goes through
`html.escape` before it reaches the page, and highlighting or diff markup is added only around
escaped pieces. Nothing here imports gradio, so the views are tested as plain strings.
"""

from __future__ import annotations

import difflib
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from kard.kinds import KIND_LABELS
from kard.knowledge import tokenize
from kard.prompts import same_answer
from kard.records import CHOICE, OPEN, YES_NO, YES_NO_OPTIONS, Hit, Timings, final_order, is_recalled

if TYPE_CHECKING:
    from kard.annotations import Revision

_WORD = re.compile(r"[^\W_]+")  # the words kard.knowledge.tokenize reads
_TOKENS = re.compile(r"\s+|[^\s]+")


def esc(text: object) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if text is None else str(text), quote=True)


# -- query terms -------------------------------------------------------------------------------------
def query_terms(text: str) -> list[str]:
    """The question's BM25 terms (kard.knowledge.tokenize: stopwords out, plurals folded), first seen first."""
    return list(dict.fromkeys(tokenize(text)))


def highlight(text: str, terms: Iterable[str]) -> str:
    """Escaped `text` with each word BM25 would match to `terms` (same tokenizer) wrapped in <mark>."""
    wanted = set(terms)
    out, last = [], 0
    for match in _WORD.finditer(text) if wanted else ():
        if set(tokenize(match.group(0))) & wanted:
            out.append(esc(text[last:match.start()]))
            out.append(f"<mark>{esc(match.group(0))}</mark>")
            last = match.end()
    out.append(esc(text[last:]))
    return "".join(out)


# -- rerank panel ------------------------------------------------------------------------------------
def _move(hit: Hit) -> str:
    if hit.rerank_rank is None:
        return ""
    delta = hit.bm25_rank - hit.rerank_rank
    if delta > 0:
        return f'<span class="kard-up" title="up {delta} from BM25">&#9650;{delta}</span>'
    if delta < 0:
        return f'<span class="kard-down" title="down {-delta} from BM25">&#9660;{-delta}</span>'
    return '<span class="kard-same" title="same rank">=</span>'


def _score(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.2f}"


PASSAGES_HEADING = "Retrieved passages"
"""The rerank panel's heading, for screen readers only: the accordion around it shows its own label."""


def rerank_panel(candidates: Sequence[Hit], used_ids: Sequence[str], question: str, *,
                 reranker_name: str | None = None, max_rows: int = 10, searched: int | None = None) -> str:
    """Candidate passages in the order the student's passages were taken from (the reranker's when it
    ran, else BM25's), with both rankings and the top-k cut.

    `used_ids` are the passages sent to the student; rows after them sit below a visible cut line.
    `searched`: how many candidates BM25 found, when `candidates` keeps only the first of them.
    """
    heading = f'<h2 class="kard-sr-only">{PASSAGES_HEADING}</h2>'  # the accordion's label is no heading
    if not candidates:
        return f'<div class="kard-panel kard-empty">{heading}No passage matched the question\'s words.</div>'
    candidates = final_order(candidates)
    terms = query_terms(question)
    reranked = reranker_name is not None and any(h.rerank_rank is not None for h in candidates)
    header = (f"Reranked by <b>{esc(reranker_name)}</b>" if reranked else
              "<b>BM25 only, no reranker loaded</b> (the app reranks with demo/reranker unless KARD_RERANKER or "
              "--reranker says none; set either to a trained reranker folder)")
    if any(is_recalled(h.passage.id) for h in candidates):
        header += (" &middot; <b>the student read a saved correction of this question</b> (recall; the app's --no-recall "
                   "or KARD_RECALL=off turns it off)")
    columns = ["#", "BM25 rank", "BM25 score"] + (["reranker rank", "reranker score", "move"] if reranked else [])
    rows = []
    used = set(used_ids)
    k = len(used)
    for position, hit in enumerate(candidates[:max_rows], start=1):
        saved = is_recalled(hit.passage.id)
        cells = [str(position), "saved" if saved else str(hit.bm25_rank), "&ndash;" if saved else _score(hit.bm25_score)]
        if reranked:
            cells += [esc(hit.rerank_rank) if hit.rerank_rank else "&ndash;", _score(hit.rerank_score), _move(hit)]
        p = hit.passage
        title = "Saved correction of this question" if saved else highlight(p.title, terms)  # untitled for the student
        body = (f'<div class="kard-title">{title}</div>' if title else "") + \
               f'<div class="kard-text">{highlight(p.text, terms)}</div>'
        css = "kard-used" if p.id in used else "kard-unused"
        rows.append(f'<tr class="{css}" data-passage-id="{esc(p.id)}">' +
                    "".join(f'<td class="kard-num" data-label="{name}">{c}</td>' for name, c in zip(columns, cells))
                    + f'<td class="kard-passage">{body}</td></tr>')
        if position == k and len(candidates) > k:
            rows.append(f'<tr class="kard-cut"><td colspan="{len(cells) + 1}">&#9986; top-{k} above this line '
                        "went to the student</td></tr>")
    more = len(candidates) - max_rows
    footer = f'<div class="kard-more">{more} more candidates not shown</div>' if more > 0 else ""
    head = "".join(f"<th>{c}</th>" for c in columns) + "<th>passage</th>"
    count = (f"{searched} candidates, the first {len(candidates)} kept" if searched and searched > len(candidates)
             else f"{len(candidates)} candidates")
    return (f'<div class="kard-panel">{heading}<div class="kard-panel-head">{header} &middot; {count} '
            f'&middot; top-{k} used &middot; question terms <mark>highlighted</mark></div>'
            f'<table class="kard-rerank"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f"{footer}</div>")


# -- diff --------------------------------------------------------------------------------------------
def word_diff(old: str, new: str) -> str:
    """Word-level diff of two texts: removed words in <del>, added ones in <ins>, all escaped. A replacement puts a
    space between the words removed and those added ("cat dog", not "catdog"), where neither has one: colour and
    strike-through or underline (CSS) are not the only things that tell them apart (WCAG 1.4.1)."""
    a, b = _TOKENS.findall(old or ""), _TOKENS.findall(new or "")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            out.append(esc(removed))
            continue
        if op in ("delete", "replace"):
            out.append(f"<del>{esc(removed)}</del>")
        if op == "replace" and not (removed[-1:].isspace() or added[:1].isspace()):
            out.append(" ")
        if op in ("insert", "replace"):
            out.append(f"<ins>{esc(added)}</ins>")
    return f'<div class="kard-diff">{"".join(out)}</div>'


def diff_panel(old: str, new: str, old_label: str, new_label: str) -> str:
    if not (old or "").strip() or not (new or "").strip():
        return '<div class="kard-diff kard-empty">Nothing to compare yet.</div>'
    ratio = difflib.SequenceMatcher(None, old.split(), new.split(), autojunk=False).ratio()
    return (f'<div class="kard-diff-head">Word diff: <span class="kard-old">{esc(old_label)}</span> &rarr; '
            f'<span class="kard-new">{esc(new_label)}</span> &middot; {ratio:.0%} of words shared</div>'
            + word_diff(old, new))


# -- answers, timings, cards -------------------------------------------------------------------------
def answer_label(answer: str, options: Mapping[str, str], kind: str = CHOICE) -> str:
    """An answer as people read it (plain text): "B. carbon dioxide", "yes" / "no", or an open answer's words."""
    if kind == YES_NO:
        return options.get(answer, answer)
    if kind == OPEN:
        return answer
    return f"{answer}. {options.get(answer, '?')}"


def answer_badge(answer: str | None, gold: str | None, options: Mapping[str, str], kind: str = CHOICE) -> str:
    """The answer with a badge: matches gold / does not / no gold / no answer. Yes/no answers show as
    "yes"/"no" and open answers as their text, never as letters."""
    if answer is None:
        return '<span class="kard-badge kard-bad">no answer found</span>'
    text = esc(answer_label(answer, options, kind))
    if gold is None:
        return f'<span class="kard-badge kard-nogold" title="no gold answer for this question">{text} &middot; no gold</span>'
    if same_answer(answer, gold, kind):
        return f'<span class="kard-badge kard-ok">{text} &#10003; matches gold</span>'
    gold_text = esc(answer_label(gold, options, kind))
    return f'<span class="kard-badge kard-bad">{text} &#10007; gold is {gold_text}</span>'


def answer_summary(who: str, answer: str | None, gold: str | None, options: Mapping[str, str],
                   kind: str = CHOICE) -> str:
    """A short plain-text result for the status line, which screen readers announce (a live region):
    "Student answered C, gold A: wrong", "... B: right", "... C, no gold", "... but no answer was found"."""
    if answer is None:
        gold_part = f"; gold {_short_answer(gold, options, kind)}" if gold is not None else ""
        return f"{who} answered, but no answer was found{gold_part}"
    said = f"{who} answered {_short_answer(answer, options, kind)}"
    if gold is None:
        return f"{said}, no gold"
    if same_answer(answer, gold, kind):
        return f"{said}: right"
    return f"{said}, gold {_short_answer(gold, options, kind)}: wrong"


def _short_answer(answer: str, options: Mapping[str, str], kind: str) -> str:
    """An answer in a few words: the letter, "yes" / "no", or an open answer in quotes."""
    if kind == OPEN:
        return f'"{answer}"'
    return answer_label(answer, options, kind) if kind == YES_NO else answer


def kind_line(kind: str, reason: str = "") -> str:
    """'Asked as: yes/no question (why)', with how to switch the kind; for yes/no, what the student's letters
    mean (it is shown the question with YES_NO_OPTIONS, as StrategyQA's were, and answers with a letter)."""
    why = f" ({esc(reason)})" if reason else ""
    letters = ""
    if kind == YES_NO:
        meaning = ", ".join(f'"Answer: {letter}" means {text}' for letter, text in YES_NO_OPTIONS.items())
        choices = " and ".join(f"{text} ({letter})" for letter, text in YES_NO_OPTIONS.items())
        letters = f" &middot; the student picks between the options {esc(choices)}: {esc(meaning)}"
    return (f'<div class="kard-kind">Asked as: <b>{esc(KIND_LABELS.get(kind, kind))}</b>{why}{letters} '
            '<span class="kard-muted">&middot; not right? choose another kind under "Ask as" and ask again'
            '</span></div>')


ANSWER_SOURCES = {
    "stated": "answer read from the rationale's conclusion (\"So the answer is ...\"), not from its answer line",
    "chosen": "no answer written: the letter the model finds likeliest after its rationale",
}
"""What the answer badge says about an answer that was not simply read from the "Answer:" line."""


def answer_source_line(source: str) -> str:
    """A muted line under the answer badge saying how the answer was read (nothing for a plain answer line)."""
    text = ANSWER_SOURCES.get(source)
    return f'<div class="kard-answer-source kard-muted">{esc(text)}</div>' if text else ""


def timing_line(timings: Timings | None, tokens_out: int = 0, model: str = "", engine: str | None = None) -> str:
    """'model · ctranslate2 int8 · first token 0.41 s · total 3.20 s · 38.1 tokens/s' from what was measured."""
    parts = [f"<b>{esc(model)}</b>"] if model else []
    if engine:
        parts.append(f'<span class="kard-engine">{esc(engine)}</span>')
    if timings is not None:
        if timings.first_token_s is not None:
            parts.append(f"first token {timings.first_token_s:.2f} s")
        if timings.total_s:
            parts.append(f"total {timings.total_s:.2f} s")
        if tokens_out and timings.generation_s:
            parts.append(f"{tokens_out / timings.generation_s:.1f} tokens/s")
    return f'<div class="kard-timing">{" &middot; ".join(parts)}</div>'


def rationale_card(role: str, source: str, text: str, *, answer_html: str = "", timing_html: str = "",
                   note: str = "", streaming: bool = False, kind_html: str = "", notice: str = "",
                   level: int = 2) -> str:
    """A column of the teacher-vs-student view: who wrote it (a heading of `level`: 2 on the Ask tab, under the
    page's title), how the question was asked, a warning `notice` (what the column shows instead of what was asked
    for, and why), the rationale, the answer badge, timings. While `streaming`, a blinking cursor that screen
    readers skip, and aria-busy (the card is no live region: the status line announces the answer)."""
    notice_html = f'<div class="kard-msg kard-msg-warn kard-card-notice">{esc(notice)}</div>' if notice else ""
    cursor = '<span class="kard-cursor" aria-hidden="true">&#9612;</span>' if streaming else ""
    body = esc(text) + cursor if (text or streaming) else f'<span class="kard-muted">{esc(note) or "&nbsp;"}</span>'
    busy = ' aria-busy="true"' if streaming else ""
    return (f'<div class="kard-card kard-{esc(role.lower())}"{busy}><div class="kard-card-head">'
            f'<h{level} class="kard-role">{esc(role)}</h{level}> '
            f'<span class="kard-source">{esc(source)}</span></div>{kind_html}{notice_html}'
            f'<div class="kard-rationale">{body}</div>'
            f'<div class="kard-answer">{answer_html}</div>{timing_html}</div>')


def shown_path(path: str | Path) -> str:
    """A path as the page shows it: relative to the working directory when it lies inside it (`demo/student`, not
    where this machine keeps the checkout); anything else (a hub id, a path outside) as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def message(text: str, kind: str = "info") -> str:
    """A status line ('info', 'warn' or 'error'), escaped."""
    return f'<div class="kard-msg kard-msg-{esc(kind)}">{esc(text)}</div>'


# -- history -----------------------------------------------------------------------------------------
def history_panel(revisions: Sequence["Revision"]) -> str:
    """The revisions of one item, newest first, each with its passage marks (saying where they changed from the
    revision before, so a revision that changed only marks shows what) and its diff against the one before."""
    if not revisions:
        return '<div class="kard-empty">No saved revisions for this item yet.</div>'
    items = []
    previous, previous_marks = "", {}
    for rev in revisions:
        c = rev.correction
        action = f"reverted to r{rev.reverted_from}" if rev.action == "revert" else "saved"
        tags = ", ".join(c.tags) or "no tags"
        meta = (f"<b>r{rev.revision}</b> {esc(action)} by <b>{esc(c.curator)}</b> at {esc(rev.created_at)} "
                f"&middot; answer {esc(answer_label(c.answer, c.options, c.kind))} "
                f"&middot; rating {esc(c.rating or '-')} &middot; {esc(tags)}")
        note = f'<div class="kard-note">{esc(c.note)}</div>' if c.note else ""
        marks, titles = c.relevance, {p.id: p.title or p.id for p in c.passages}
        changed = " (changed)" if rev.revision > revisions[0].revision and marks != previous_marks else ""
        listed = "; ".join(f"{titles.get(pid, pid)}: {mark}" for pid, mark in marks.items()) or "none"
        marked = f'<div class="kard-marks">Passage marks{changed}: {esc(listed)}</div>'
        items.append(f'<li class="kard-rev"><div>{meta}</div>{note}{marked}{word_diff(previous, c.rationale)}</li>')
        previous, previous_marks = c.rationale, marks
    return f'<ol class="kard-history" reversed>{"".join(reversed(items))}</ol>'


CARD_MIN_WIDTH = 320
"""Pixels below which two side-by-side cards (student | teacher, one round | another) stack instead: a phone."""

CSS = """
/* Text colours of our own, each >= 4.5:1 (WCAG AA) on its background in the light and the dark theme (Gradio puts
   .dark on the body for ?__theme=dark or a dark system setting); subdued text is the theme's (app.theme). */
:root { --kard-up: #166534; --kard-down: #b91c1c; --kard-cut: #4338ca; }  /* up: 6.1:1 on a used row's #eef2ff */
.dark { --kard-up: #4ade80; --kard-down: #f87171; --kard-cut: #a5b4fc; --color-accent: #818cf8; }  /* a chosen tab: 4.3:1 */
/* A keyboard focus ring (WCAG 2.4.7), >= 3:1 against the page and the blocks in both themes: around a radio's or
   checkbox's whole choice (Gradio's own is a faint colour change of the small circle), and around text fields,
   dropdowns, buttons, tabs and links (Gradio's text fields show none, its dark tabs a 1px near-black line). A text
   field or dropdown rings only after keyboard use (html.kard-keyboard, page_script.KEYBOARD_JS): the browser counts a
   focused text field as :focus-visible even after a click, and a picked dropdown keeps focus. A dropdown's ring goes
   around its whole box, not the text input inside it. */
:root { --kard-focus: #4338ca; } .dark { --kard-focus: #a5b4fc; }
label:has(> input[type=radio]:focus-visible), label:has(> input[type=checkbox]:focus-visible) {
  outline: 3px solid var(--kard-focus); outline-offset: 2px; }
.gradio-container :is(select, button, a, [role=tab], [tabindex]:not([tabindex="-1"])):focus-visible,
.kard-keyboard .gradio-container :is(textarea, input:not([type=radio], [type=checkbox], [role=combobox])):focus,
.kard-keyboard .gradio-container .wrap:has(> .wrap-inner input[role=combobox]:focus) {
  outline: 3px solid var(--kard-focus) !important; outline-offset: 1px; }
.kard-panel-head, .kard-diff-head { font-size: 0.9em; margin-bottom: 6px; color: var(--body-text-color-subdued); }
table.kard-rerank { width: 100%; border-collapse: collapse; font-size: 0.9em; }
table.kard-rerank th { text-align: left; border-bottom: 2px solid var(--border-color-primary); padding: 4px 6px; white-space: nowrap; }
table.kard-rerank td { border-bottom: 1px solid var(--border-color-primary); padding: 4px 6px; vertical-align: top; }
td.kard-num { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
tr.kard-used { background: var(--color-accent-soft); }
tr.kard-cut td { border-top: 2px dashed var(--color-accent); color: var(--kard-cut); font-size: 0.85em; text-align: center; }
.kard-title { font-weight: 600; }
.kard-up { color: var(--kard-up); font-weight: 600; } .kard-down { color: var(--kard-down); font-weight: 600; }
.kard-same { color: var(--body-text-color-subdued); }
.kard-more, .kard-muted, .kard-empty { color: var(--body-text-color-subdued); font-size: 0.9em; }
mark { background: #fde68a; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.kard-diff { white-space: pre-wrap; line-height: 1.5; }
.kard-diff del { background: #fee2e2; color: #991b1b; text-decoration: line-through; }
.kard-diff ins { background: #dcfce7; color: #166534; text-decoration: underline; }  /* not by colour alone */
.kard-old { border-bottom: 2px solid #fca5a5; } .kard-new { border-bottom: 2px solid #86efac; }
.kard-panel table, .kard-panel th, .kard-panel td { border-left: 0 !important; border-right: 0 !important; }
.kard-panel td, .kard-panel th { background: transparent; }
.kard-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px; min-height: 160px; }
.kard-card-head { margin-bottom: 6px; } .kard-source { color: var(--body-text-color-subdued); font-size: 0.85em; margin-left: 6px; }
.kard-sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }  /* read by screen readers, not shown */
h2.kard-role, h3.kard-role { display: inline; font-size: 1em; font-weight: 700; margin: 0; }  /* a card's writer */
.kard-rationale { white-space: pre-wrap; line-height: 1.5; min-height: 80px; }
.kard-answer { margin-top: 8px; } .kard-timing { margin-top: 6px; font-size: 0.85em; color: var(--body-text-color-subdued); }
.kard-badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 0.9em; }
.kard-ok { background: #dcfce7; color: #166534; } .kard-bad { background: #fee2e2; color: #991b1b; }
.kard-nogold { background: #e5e7eb; color: #374151; }
.kard-kind { font-size: 0.9em; margin-bottom: 6px; }
.kard-msg { padding: 6px 10px; border-radius: 6px; } .kard-msg-info { background: var(--color-accent-soft); }
.kard-msg-warn { background: #fef3c7; color: #92400e; } .kard-msg-error { background: #fee2e2; color: #991b1b; }
.kard-history { padding-left: 1.2em; } .kard-rev { margin-bottom: 10px; } .kard-note { font-style: italic; }
.kard-cursor { animation: kard-blink 1s steps(1) infinite; } @keyframes kard-blink { 50% { opacity: 0; } }
@media (prefers-reduced-motion: reduce) {  /* a steady cursor (Gradio drops a one-line @media rule) */
  .kard-cursor { animation: none; }
}
.kard-rounds td { vertical-align: top; padding: 4px 8px; } .kard-answer-source { font-size: 0.85em; }
#kard-loop-report .md { display: block; overflow-x: auto; }  /* the round report: a narrow screen scrolls it */
#kard-loop-report th, #kard-loop-report td { word-break: normal; overflow-wrap: normal; }  /* wrap at spaces only */
#kard-loop-report td:first-child { white-space: nowrap; }  /* a round's name on one line */
#kard-loop-plot .image-frame { padding-top: 32px; }  /* the plot's title below its buttons, not under them */
@media (max-width: 640px) {  /* a phone: each passage a block, its numbers on one labelled line above its text */
  table.kard-rerank thead { display: none; }
  table.kard-rerank, table.kard-rerank tbody, table.kard-rerank tr, table.kard-rerank td { display: block; }
  table.kard-rerank tr { border-bottom: 1px solid var(--border-color-primary); padding: 4px 0; }
  table.kard-rerank td { border: 0 !important; }
  table.kard-rerank td.kard-num { display: inline-block; text-align: left; padding-right: 2px; }
  td.kard-num::before { content: attr(data-label) " "; color: var(--body-text-color-subdued); }
  td.kard-num:first-child::before { content: "#"; }
  #kard-table { --input-text-size: 12px; --size-2: 4px; }  /* the browse table: smaller text, less padding */
  /* its headings whole ("student", not "stu/den/t"): the one-word columns as wide as their heading, the item and
     question narrower (they wrap at spaces and dashes); the rest scrolls sideways inside the table */
  #kard-table th .header { overflow-wrap: normal; word-break: keep-all; }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):nth-child(1) { --kard-col: calc((100vw - 64px) * 0.15); }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):nth-child(2) { --kard-col: 36px; }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):nth-child(3) { --kard-col: calc((100vw - 64px) * 0.24); }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):is(:nth-child(4), :nth-child(5), :nth-child(9)) {
    --kard-col: 60px; }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):nth-child(6) { --kard-col: 40px; }
  #kard-table :is(th, .sizing-body td, .virtual-row > *):is(:nth-child(-n+6), :nth-child(9)) {
    width: var(--kard-col) !important; min-width: var(--kard-col) !important; max-width: var(--kard-col) !important;
    flex: 0 0 var(--kard-col) !important; }
  #kard-table .virtual-table-viewport { overflow-x: auto; }
  #kard-table table.header-table { width: max-content !important; }  /* the sum of the headings' widths */
}
/* a dropdown's long value ends in an ellipsis before its arrow */
.gradio-container .secondary-wrap input[role=combobox] { text-overflow: ellipsis; }
#kard-picked .secondary-wrap input[role=combobox] { padding-right: 28px; }  /* its arrow lies over its text */
#kard-loop-tab h2 { font-size: var(--text-lg); }  /* the Retrain tab's section headings below the page's title */
"""

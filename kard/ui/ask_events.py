"""The Ask tab's events: ask (the API's /ask, and the page's with the editor locked while the student answers and
an unsaved correction guarded), Next question, and the compare step that follows an ask (the API's /compare, and
the page's, which runs only after an ask that handed out a new item).

Each is a generator of the outputs `kard.ui.blocks` wires it to (AskTab.ask_outputs, AskTab.compare_outputs),
over the plain functions of `kard.ui.asking`.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from typing import Any, Callable, Sequence

from kard.errors import KardError
from kard.records import AskedItem, Question
from kard.ui import asking, curating
from kard.ui.cards import live_diff
from kard.ui.studio import InputError, Studio
from kard.ui.updates import answer_updates, editing_label, mark_updates, skips, warn
from kard.ui.views import esc, message

log = logging.getLogger(__name__)

ASK_OUTPUTS = 5
"""How many outputs /ask has (AskTab.ask_outputs)."""
ANSWERING, HANDED_OUT, FAILED = "answering", "handed out", "failed"
"""The steps of an ask: the student is still answering, the new item is out, or the ask failed."""
WAITING_LABEL = ("The student is answering; the editor opens with the teacher's rationale (or your saved correction) "
                 "when the comparison is ready.")
TEACHER_WAITING_LABEL = ("The student has answered. Waiting for the teacher's rationale: the editor stays read-only "
                         "until it arrives, then opens with it (or your saved correction).")
COMPARING_LABEL = "The student has answered; the editor opens with the comparison (or your saved correction)."
LOCKED_LABELS = (WAITING_LABEL, TEACHER_WAITING_LABEL, COMPARING_LABEL)
"""The editor's labels while it is read-only for a new item (the student answers, then the compare step runs)."""
COMPARE_FAILED_LABEL = "The comparison could not be made (see the message above); the editor keeps its text."
UNANSWERED_LABEL = "The question could not be answered (see the message above); the editor keeps its text."
REVIEW_OUTPUTS = 5
"""What the page's compare step also sets, after /compare's outputs: the review controls (rating, tags, note) and,
cleared, the save message and its confirmation box (AskTab), which spoke of the item before."""
UNSAVED_WARNING = ("The editor holds a correction (rationale, rating, tags, note or marks) you have not saved, "
                   "and asking now would replace it. Fix: save it (Ctrl+S), or click the same button again to "
                   "discard it")
REPLACE_WARNING = ("The editor holds a correction you have not saved, and this would replace it with the "
                   "{whose}'s rationale. Fix: save it (Ctrl+S), or click the same button again to discard it")
SWITCH_WARNING = ("The editor holds a correction (rationale, rating, tags, note or marks) you have not saved, "
                  "and asking the question again as another kind would replace it. Fix: save it (Ctrl+S), or "
                  "click Ask to discard it and ask as the kind now chosen")


class AskTurns:
    """The page's asks in one browser session, numbered as they start. A newer ask supersedes the one running: that
    one stops (its student stops generating) and its compare step changes nothing, so the question last asked is
    the one answered, compared and saved.

    Kept in a gr.State: Gradio hands every event of a session that session's State object itself, so a running ask
    sees a newer one start; a new session gets a fresh one (Gradio deep-copies the State's value)."""

    def __init__(self) -> None:
        self.latest = 0
        self.editor_waits_for: str | None = None
        """What the latest ask's read-only editor waits for (STUDENT_ANSWER...), None while it is open."""
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> AskTurns:
        return AskTurns()

    def take(self) -> int:
        """A new ask's turn: every earlier one is superseded."""
        with self._lock:
            self.latest += 1
            return self.latest

    def is_latest(self, turn: int) -> bool:
        return turn == self.latest

    def lock(self, turn: int, waiting_for: str) -> None:
        """The editor is read-only for `turn`'s ask until it has `waiting_for` (an older ask changes nothing)."""
        with self._lock:
            if turn == self.latest:
                self.editor_waits_for = waiting_for

    def open(self, turn: int) -> None:
        """`turn`'s ask opened the editor again (an older ask changes nothing)."""
        with self._lock:
            if turn == self.latest:
                self.editor_waits_for = None


STUDENT_ANSWER, TEACHER_RATIONALE, COMPARISON = ("the student's answer", "the teacher's rationale",
                                                 "the comparison")
"""What a locked editor waits for (AskTurns.editor_waits_for), as its labels say (LOCKED_LABELS)."""
SAVE_LOCKED = ("Nothing was saved: the editor is read-only, waiting for {waiting_for} of the question just asked. "
               "Fix: save once the editor opens")
USE_LOCKED = ("The editor was not changed: it is read-only, waiting for {waiting_for} of the question just asked. "
              "Fix: use the {whose}'s rationale once the editor opens")


def save_refusal(turns: AskTurns | None) -> str | None:
    """Why Save must not save now, or None: while the page's editor is read-only for a new ask, the item and text a
    save would send are the previous question's (the new item is not in the editor yet)."""
    return locked_refusal(turns, SAVE_LOCKED)


def use_refusal(turns: AskTurns | None, whose: str) -> str | None:
    """Why "Use teacher's / student's rationale" must not fill the editor now, or None: while it is read-only for a
    new ask, the item it would read is the previous question's, and the compare step then replaces the text anyway."""
    return locked_refusal(turns, USE_LOCKED, whose=whose)


def locked_refusal(turns: AskTurns | None, template: str, **names: str) -> str | None:
    """`template` filled with what the page's read-only editor waits for; None while the editor is open."""
    waiting_for = turns.editor_waits_for if turns is not None else None
    return template.format(waiting_for=waiting_for, **names) if waiting_for else None


EARLIER_ANSWER_SHOWN = "The cards below still show the answer to the question asked before"
"""Added to a failed ask's message when an earlier answer stays on screen (the ask changes nothing)."""
NO_ITEM = "Nothing to compare. Fix: pass the item /ask returned (its fourth output), unchanged"
"""/compare called without an item."""

ReviewInputs = Sequence[Any]
"""The review controls as the page's checks read them: rating, error tags, note, then the passage marks (empty
where not read)."""


def warned_for(action: str, rationale: str | None, review: ReviewInputs = ()) -> tuple:
    """What a warning arms (AskTab.warned): doing `action` again with this correction in the editor (and these
    review controls) discards it."""
    reviewed = [curating.review_of(*review[:3]), tuple(review[3:])] if review else []
    return (action, (rationale or "").strip(), *reviewed)


def loses_correction(studio: Studio, question_text: str | None, current: dict | None, rationale: str | None,
                     original: str | None, last_saved: str | None, warned: Sequence[Any] | None, action: str,
                     review: ReviewInputs = ()) -> bool:
    """Whether `action` now would replace an unsaved correction without the curator having been warned.

    Unsaved: the editor's text (`curating.unsaved_edit`) or, given `review` (rating, tags, note, marks), the review
    controls (`curating.unsaved_review`) changed since the item started them. Only a curator can lose one (the demo
    saves nothing). Doing the same action again with the same correction after its warning goes on (the curator
    chose to discard it); so does an ask that fails anyway (an empty question box), as it leaves the editor alone.
    `question_text` is None where no question box is read (Next question fills it)."""
    if not studio.is_curator or (question_text is not None and not question_text.strip()):
        return False
    if not (curating.unsaved_edit(current, rationale, original, last_saved)
            or (current and review and _unsaved_review(studio, AskedItem.from_dict(current), review))):
        return False
    return tuple(warned or ()) != warned_for(action, rationale, review)


def _unsaved_review(studio: Studio, item: AskedItem, review: ReviewInputs) -> bool:
    used_ids = [hit.passage.id for hit in item.used]
    return curating.unsaved_review(asking.saved_revision(studio, item.question), used_ids, *review)


def stopped_ask(warning: str) -> list:
    """The page's ask outputs (AskTab.ask_outputs, handed_out, editor, label) when the unsaved-correction check
    stopped it: the warning in the status line, nothing else touched, nothing to compare."""
    import gradio as gr

    gr.Warning(esc(warning))
    return [*skips(2), message(warning, "warn"), *skips(ASK_OUTPUTS - 3), False, *skips(2)]


def ask(studio: Studio, text: str, options_text: str, picked_id: str | None, how: str | None = "auto"):
    """The API's /ask: the outputs of AskTab.ask_outputs, step by step. A failed ask returns the error as its
    status and empty cards and no item (a caller has no earlier answer on screen to keep)."""
    for outputs, step in ask_steps(studio, text, options_text, picked_id, how):
        yield outputs if step != FAILED else ["", "", outputs[2], None, ""]


def ask_on_page(studio: Studio, text: str, options_text: str, picked_id: str | None, how: str | None = "auto",
                turns: AskTurns | None = None, answer_shown: bool = False):
    """The page's ask: /ask's outputs, what it handed out (AskTab.handed_out: its turn once the new item is out,
    else False), the editor and its label.

    The compare step that follows refills the editor, so while the student answers, and then while the teacher
    does, the editor is read-only (text typed meanwhile would be lost), its label saying which it waits for; it
    opens again when the compare step ends. A failed ask (an empty question box,
    unreadable options) is not compared: the correction being edited stays, and the editor opens at once. An ask
    takes its turn of `turns` once the student starts; when a newer ask takes one, it stops where it is."""
    import gradio as gr

    turns = turns or AskTurns()
    turn, locked, yielded = 0, False, False

    def superseded() -> bool:
        return bool(turn) and not turns.is_latest(turn)

    try:
        with closing(ask_steps(studio, text, options_text, picked_id, how, answer_shown,
                               speaks=lambda: not superseded())) as steps:
            for outputs, step in steps:
                turn = turn or (turns.take() if step == ANSWERING else 0)
                if superseded():  # a newer ask of this page runs: it locks and fills the editor
                    if not yielded:
                        yield unchanged_ask()
                    return
                editor, label = gr.skip(), gr.skip()
                if step == ANSWERING and not locked:
                    locked, editor, label = True, gr.update(interactive=False), WAITING_LABEL
                    turns.lock(turn, STUDENT_ANSWER)
                elif step == HANDED_OUT and locked:  # the student is done; the compare step runs next
                    teacher = studio.teacher_factory is not None
                    label = TEACHER_WAITING_LABEL if teacher else COMPARING_LABEL
                    turns.lock(turn, TEACHER_RATIONALE if teacher else COMPARISON)
                elif step == FAILED:
                    editor, label = gr.update(interactive=True), UNANSWERED_LABEL if locked else gr.skip()
                    turns.open(turn)
                yielded = True
                yield [*outputs, turn if step == HANDED_OUT else False, editor, label]
    except Exception:  # an unexpected failure (Gradio shows it): the editor must not stay read-only
        if superseded():  # nor may a superseded ask's failure speak over the newer question
            log.warning("a superseded ask failed", exc_info=True)
            if not yielded:
                yield unchanged_ask()
            return
        if locked:
            turns.open(turn)
            yield [*skips(ASK_OUTPUTS), False, gr.update(interactive=True), UNANSWERED_LABEL]
        raise


def unchanged_ask() -> list:
    """The page's ask outputs with nothing changed and nothing handed out. A page event's generator must yield at
    least once: one that ends without a step makes Gradio send None for every output, which blanks the components
    (a checkbox group then holds None, and every event reading it fails)."""
    return [*skips(ASK_OUTPUTS), False, *skips(2)]


def ask_checked(studio: Studio, text: str, options_text: str, picked_id: str | None, how: str | None,
                current: dict | None, rationale: str | None, original: str | None, last_saved: str | None,
                warned: Sequence[Any] | None, *review: Any, action: str = "ask", warning: str = UNSAVED_WARNING,
                turns: AskTurns | None = None):
    """The Ask button: `ask_on_page`'s outputs and what a warning armed (AskTab.warned: nothing, once it asks), or,
    where the ask would replace an unsaved correction (`review`: the rating, tags, note and passage marks, where
    read), one step with `warning` that arms the Ask button."""
    if loses_correction(studio, text, current, rationale, original, last_saved, warned, action, review):
        yield [*stopped_ask(warning), warned_for("ask", rationale, review)]
        return
    for outputs in ask_on_page(studio, text, options_text, picked_id, how, turns, answer_shown=bool(current)):
        yield [*outputs, None]


def ask_as_switched(studio: Studio, text: str, options_text: str, picked_id: str | None, how: str | None,
                    *check: Any, turns: AskTurns | None = None):
    """Switching "Ask as": the question in the box asked again as the kind chosen (nothing happens before one is
    typed), checked as the Ask button is (`check`: its inputs after the question's four). When it would replace an
    unsaved correction, it warns; the radio keeps the new kind and Ask goes on with it."""
    if not (text or "").strip():
        yield [*skips(ASK_OUTPUTS), False, *skips(3)]
        return
    yield from ask_checked(studio, text, options_text, picked_id, how, *check, action="switch", warning=SWITCH_WARNING,
                           turns=turns)


def next_question(studio: Studio, picked_id: str | None, current: dict | None, rationale: str | None,
                  original: str | None, last_saved: str | None, warned: Sequence[Any] | None, *review: Any) -> tuple:
    """Next question: the demo question after `picked_id` in the boxes (picked, question, options, kind), the
    status, what a warning armed (AskTab.warned) and whether to ask it; or only the warning, where asking it would
    replace an unsaved correction."""
    import gradio as gr

    if loses_correction(studio, None, current, rationale, original, last_saved, warned, "next", review):
        gr.Warning(esc(UNSAVED_WARNING))
        return *skips(4), message(UNSAVED_WARNING, "warn"), warned_for("next", rationale, review), False
    qid = asking.next_question(studio, picked_id)
    return gr.update(value=qid), *asking.pick(studio, qid), "auto", gr.skip(), None, True


def ask_steps(studio: Studio, text: str, options_text: str, picked_id: str | None, how: str | None,
              answer_shown: bool = False, speaks: Callable[[], bool] = lambda: True):
    """(AskTab.ask_outputs, ANSWERING / HANDED_OUT / FAILED) for each step of the ask. A failed ask leaves the cards
    as they were; where they show an earlier question's answer (`answer_shown`), its message says so. Its error is
    also a toast while `speaks()`: an ask that a newer one superseded must not speak over the newer question."""
    import gradio as gr

    try:
        for update in asking.ask(studio, text, options_text, picked_id, how or "auto"):
            teacher = "" if update.item is None else gr.skip()
            outputs = [update.rerank_html, update.student_html, update.status_html, update.item or gr.skip(), teacher]
            yield outputs, ANSWERING if update.item is None else HANDED_OUT
    except KardError as error:
        status = warn(error) if speaks() else message(str(error), "error")
        if answer_shown:
            status = message(f"{str(error).rstrip('.')}. {EARLIER_ANSWER_SHOWN}", "error")
        yield [gr.skip(), gr.skip(), status, gr.skip(), gr.skip()], FAILED


def compare(studio: Studio, width: int, current: dict | None, review: bool = False,
            is_latest: Callable[[], bool] = lambda: True):
    """The compare step's updates for `width` outputs (AskTab.compare_outputs); with `review` (the page's),
    REVIEW_OUTPUTS more: the rating, tags and note, which a new item starts from its saved correction's, or empty,
    and the save message and confirmation box, cleared. Its warnings (a failed teacher) are shown only while
    `is_latest()`: a compare that a newer ask superseded must not speak over the newer question."""
    import gradio as gr

    width += REVIEW_OUTPUTS if review else 0
    if not current:  # the page's ask showed why it has no item: keep that message; an API caller is told
        yield skips(width) if review else [warn(InputError(NO_ITEM)), *skips(width - 1)]
        return
    try:
        for c in asking.compare_steps(studio, current):
            if c.partial:
                yield [gr.skip(), c.teacher_html, *skips(width - 2)]
                continue
            if c.warning and is_latest():
                gr.Warning(esc(c.warning))
            radio, text_box = answer_updates(Question.from_dict(c.item["question"]), c.editor_answer)
            final = [gr.skip(), c.teacher_html, c.diff_html, c.editor_text, c.editor_text, c.editor_source,
                     editing_label(c.editor_source), radio, live_diff(c.editor_text, c.editor_text), c.item,
                     *mark_updates(c.item, list(c.editor_marks)), text_box]
            yield final + ([c.editor_rating, list(c.editor_tags), c.editor_note, "",
                            gr.update(visible=False, value=False)] if review else [])
    except KardError as error:
        if is_latest():
            yield [warn(error), *skips(width - 1)]


def compare_when_handed_out(compared: Callable, width: int, editor_at: int, current: dict | None,
                            handed_out: int | bool, turns: AskTurns | None = None, *, label_at: int | None = None):
    """The page's compare step: only after an ask that handed out a new item (else nothing changes), and, given
    `turns`, only while that ask (`handed_out`: its turn) is the page's latest: once a newer ask runs, it stops
    without a word, so only the latest item fills the editor. It opens the editor (`editor_at` in the outputs) that
    the ask made read-only: in its final step, which fills the editor, or, when the compare fails before that, in
    one more step of its own, which also sets the editor's label (`label_at`, where given) to say so."""
    import gradio as gr

    def latest() -> bool:
        return turns is None or turns.is_latest(handed_out)

    if not handed_out or not latest():
        yield skips(width)
        return
    opened = skips(width)
    opened[editor_at] = gr.update(interactive=True)
    if label_at is not None:
        opened[label_at] = COMPARE_FAILED_LABEL
    filled = yielded = False
    try:
        for outputs in compared(current, is_latest=latest):
            if not latest():
                break
            if isinstance(outputs[editor_at], str):  # the final step: the editor's new text, editable again
                outputs, filled = list(outputs), True
                outputs[editor_at] = gr.update(value=outputs[editor_at], interactive=True)
                _open(turns, handed_out)
            yielded = True
            yield outputs
    except Exception:
        if latest():
            _open(turns, handed_out)
            yield opened
        raise
    if not filled and latest():
        _open(turns, handed_out)
        yield opened
    elif not yielded:  # superseded before its first step: a step is still due (`unchanged_ask` says why)
        yield skips(width)


def _open(turns: AskTurns | None, turn: int | bool) -> None:
    if turns is not None:
        turns.open(int(turn))

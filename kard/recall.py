"""Recall: a saved correction goes back to the student when its question is asked again.

    recall = CorrectionRecall.from_store(AnnotationStore(db))
    Pipeline(knowledge, student, recall=recall)      # the correction is the passage the student reads

Retraining on corrections is slow and, measured (docs/closing_the_loop.md), rarely makes the student
answer the corrected questions right. Recall needs no training: when a question matches a saved item
(the same item, or the same options and nearly the same words), the curator's rationale is the passage
the student reads, as knowledge, marked as a correction (`RECALLED_PREFIX`), ending as the student's
training targets end: "So the answer is <the saved answer's option text>." (`kard.distill.concluded`).
BM25's candidates stay in the panel below it. Questions that match no saved item read exactly what they
read before.

Only revisions the export would train on are recalled (`kard.loop.export.exclusion_reason`): a rejected
or inconsistent save is never handed back. Recalled passages are never exported as training knowledge
and never train the reranker: they would teach the student to copy its own target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

from kard.annotations import AnnotationStore, AnnotationStoreError, Revision
from kard.distill import concluded
from kard.kinds import asked_alike
from kard.knowledge import tokenize
from kard.loop.export import exclusion_reason
from kard.records import RECALLED_PREFIX, Hit, Passage, Question, item_id_for

log = logging.getLogger(__name__)

MIN_OVERLAP = 0.8
"""Share of the longer question's words the two questions must have in common (a rewording, not a neighbour)."""


def word_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / max(|a|, |b|): 1 for the same words, small when one question only contains the other."""
    longest = max(len(a), len(b))
    return len(a & b) / longest if longest else 0.0


def options_key(options: Mapping[str, str]) -> frozenset[str]:
    """The options as a set of texts: reordered options still match (the rationale names the option's text)."""
    return frozenset(" ".join(text.lower().split()) for text in options.values())


@dataclass(frozen=True)
class SavedAnswer:
    """A saved correction in the form recall compares and hands back."""

    item_id: str
    kind: str
    options: frozenset[str]
    words: frozenset[str]
    rationale: str

    @staticmethod
    def from_revision(revision: Revision) -> "SavedAnswer":
        c = revision.correction
        return SavedAnswer(c.item_id, c.kind, options_key(c.options), frozenset(tokenize(c.question)),
                           concluded(c.rationale, c.to_question()))

    def hit(self, overlap: float) -> Hit:
        """The correction as a passage (BM25 rank 0: BM25 did not find it). No title: the student copies a
        passage's title into its rationale, and the panel marks the row as a saved correction anyway."""
        return Hit(Passage(f"{RECALLED_PREFIX}{self.item_id}", "", self.rationale), bm25_score=overlap, bm25_rank=0)


class CorrectionRecall:
    """The saved corrections, searchable by question."""

    def __init__(self, revisions: Sequence[Revision], min_overlap: float = MIN_OVERLAP):
        kept = [r for r in revisions if r.correction.rationale.strip() and exclusion_reason(r) is None]
        self.saved = {r.item_id: SavedAnswer.from_revision(r) for r in kept}
        self.min_overlap = min_overlap

    @classmethod
    def from_store(cls, store: AnnotationStore, min_overlap: float = MIN_OVERLAP) -> "CorrectionRecall":
        return cls(store.latest(), min_overlap)

    def __len__(self) -> int:
        return len(self.saved)

    def find(self, question: Question) -> Hit | None:
        """The saved correction for this question (its own item first, else the closest rewording), or None."""
        own = self.saved.get(item_id_for(question))
        if own is not None and asked_alike(own.kind, question):  # a listed question asked as another kind keeps its id
            return own.hit(1.0)
        words, options = frozenset(tokenize(question.text)), options_key(question.options)
        best, best_overlap = None, self.min_overlap
        for saved in self.saved.values():
            if saved.kind != question.kind or saved.options != options:
                continue
            overlap = word_overlap(words, saved.words)
            if overlap >= best_overlap:
                best, best_overlap = saved, overlap
        return None if best is None else best.hit(best_overlap)


class StoreRecall:
    """Recall over a live store: read again whenever the number of saved revisions changes."""

    def __init__(self, store: AnnotationStore, min_overlap: float = MIN_OVERLAP):
        self.store = store
        self.min_overlap = min_overlap
        self._seen: int | None = None
        self._recall = CorrectionRecall([], min_overlap)

    def find(self, question: Question) -> Hit | None:
        try:
            count = self.store.count()
            if count != self._seen:
                self._recall = CorrectionRecall.from_store(self.store, self.min_overlap)
                self._seen = count
                log.info("recall: %d saved corrections", len(self._recall))
        except AnnotationStoreError as error:  # answering goes on with what was read before
            log.warning("recall: could not read the annotation store (%s); using the corrections read before", error)
        return self._recall.find(question)

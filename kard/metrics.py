"""Evaluation metrics as pure functions: accuracy, self-consistency voting, round-to-round changes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Score:
    """Accuracy over a set of questions; an unanswered question counts as wrong."""

    total: int
    correct: int
    unanswered: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def unanswered_share(self) -> float:
        return self.unanswered / self.total if self.total else 0.0


def score(predicted: Sequence[str | None], gold: Sequence[str]) -> Score:
    """Compare predicted letters (None = no answer) with gold letters, position by position."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold answers")
    correct = sum(p is not None and p == g for p, g in zip(predicted, gold))
    unanswered = sum(p is None for p in predicted)
    return Score(total=len(gold), correct=correct, unanswered=unanswered)


def accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> float:
    return score(predicted, gold).accuracy


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    """The most frequent answer among samples, and the vote counts.

    Samples without an answer do not vote. A tie goes to the answer that appeared first among the
    samples, so the result depends only on the samples (deterministic). No answer at all -> None.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None, {}
    first_seen = {a: i for i, a in reversed(list(enumerate(answers))) if a is not None}
    winner = max(votes, key=lambda a: (votes[a], -first_seen[a]))
    return winner, dict(votes)


@dataclass(frozen=True)
class RoundChange:
    """How the answers to the same questions changed between two student rounds."""

    fixed: tuple[str, ...]  # wrong before, right after
    broken: tuple[str, ...]  # right before, wrong after
    still_right: tuple[str, ...]
    still_wrong: tuple[str, ...]


def compare_rounds(
    before: Mapping[str, str | None], after: Mapping[str, str | None], gold: Mapping[str, str]
) -> RoundChange:
    """Which questions (by id, in gold's order) a retrained student fixed and which it broke."""
    fixed, broken, right, wrong = [], [], [], []
    for qid, answer in gold.items():
        if qid not in before or qid not in after:
            continue
        was, now = before[qid] == answer, after[qid] == answer
        {(False, True): fixed, (True, False): broken, (True, True): right, (False, False): wrong}[(was, now)].append(qid)
    return RoundChange(tuple(fixed), tuple(broken), tuple(right), tuple(wrong))

"""Evaluation metrics as pure functions: accuracy, self-consistency voting, round-to-round changes."""

from __future__ import annotations

import math
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

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of the accuracy: how far a small evaluation can be trusted."""
        return wilson_interval(self.correct, self.total)


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (stays inside [0, 1], sound at 0 or total correct)."""
    if total <= 0:
        return 0.0, 1.0
    share = correct / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Two conditions on the same questions: who got which right, and an exact McNemar test."""

    only_first: int  # questions the first condition got right and the second wrong
    only_second: int
    both: int
    neither: int

    @property
    def p_value(self) -> float:
        """Two-sided exact McNemar p-value (binomial test on the questions where they disagree)."""
        return mcnemar_exact(self.only_first, self.only_second)


def compare_paired(first: Mapping[str, bool], second: Mapping[str, bool]) -> PairedComparison:
    """Correctness of two conditions, by question id; only questions both answered are compared."""
    shared = [qid for qid in first if qid in second]
    pairs = Counter((first[qid], second[qid]) for qid in shared)
    return PairedComparison(only_first=pairs[(True, False)], only_second=pairs[(False, True)],
                            both=pairs[(True, True)], neither=pairs[(False, False)])


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar test: P(a split at least this uneven | each disagreement is a fair coin)."""
    disagreements = only_first + only_second
    if disagreements == 0:
        return 1.0
    smaller = min(only_first, only_second)
    tail = sum(math.comb(disagreements, i) for i in range(smaller + 1)) / 2 ** disagreements
    return min(1.0, 2 * tail)


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

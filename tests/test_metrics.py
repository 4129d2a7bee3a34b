import pytest

from kard.metrics import (
    PairedComparison,
    Score,
    accuracy,
    compare_paired,
    compare_rounds,
    majority_vote,
    mcnemar_exact,
    score,
    wilson_interval,
)


def test_unanswered_counts_as_wrong():
    assert score(["A", None, "C", "D"], ["A", "B", "C", "A"]) == Score(total=4, correct=2, unanswered=1)
    assert accuracy(["A", None], ["A", "B"]) == 0.5


def test_score_of_nothing_is_zero_not_a_crash():
    assert score([], []).accuracy == 0.0


def test_score_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 predictions for 1 gold"):
        score(["A", "B"], ["A"])


def test_majority_vote_counts_and_ignores_missing():
    assert majority_vote(["B", None, "A", "B", None]) == ("B", {"B": 2, "A": 1})


def test_majority_vote_tie_goes_to_first_seen():
    assert majority_vote(["C", "A", "A", "C"])[0] == "C"
    assert majority_vote(["A", "C", "C", "A"])[0] == "A"


def test_majority_vote_with_no_answers():
    assert majority_vote([None, None]) == (None, {})


def test_compare_rounds_lists_fixed_and_broken_in_gold_order():
    gold = {"q1": "A", "q2": "B", "q3": "C", "q4": "D", "q5": "A"}
    before = {"q1": "B", "q2": "B", "q3": None, "q4": "D"}
    after = {"q1": "A", "q2": "C", "q3": "C", "q4": "D", "q5": "A"}
    change = compare_rounds(before, after, gold)
    assert change.fixed == ("q1", "q3")
    assert change.broken == ("q2",)
    assert change.still_right == ("q4",)
    assert change.still_wrong == ()


def test_wilson_interval_brackets_the_share_and_narrows_with_more_questions():
    low, high = wilson_interval(15, 30)
    assert low < 0.5 < high
    assert round(low, 3) == 0.332 and round(high, 3) == 0.668  # textbook value for 15/30
    wide, narrow = wilson_interval(5, 10), wilson_interval(500, 1000)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_wilson_interval_stays_inside_zero_and_one():
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert Score(total=20, correct=0, unanswered=0).interval[1] > 0.1  # zero correct is not certainty


def test_paired_comparison_counts_disagreements_on_shared_questions_only():
    first = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True}
    second = {"q1": True, "q2": False, "q3": True, "q4": False}
    assert compare_paired(first, second) == PairedComparison(only_first=1, only_second=1, both=1, neither=1)


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(6, 0) == 2 / 64  # all six disagreements one way
    assert round(mcnemar_exact(8, 2), 4) == 0.1094
    assert mcnemar_exact(2, 8) == mcnemar_exact(8, 2)

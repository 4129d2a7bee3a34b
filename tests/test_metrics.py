import pytest

from kard.metrics import Score, accuracy, compare_rounds, majority_vote, score


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

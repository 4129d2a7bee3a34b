"""Reverting in the Browse tab: the Revision picker starts on the revision before the latest, and a revert that
would change nothing (to the current revision, or to one holding the same correction) is refused, nothing written."""

from __future__ import annotations

import pytest

from app_fixtures import WritesAtOnce, at_once

from kard.annotations import AnnotationStore, Correction
from kard.ui import curating
from kard.ui.studio import InputError, Studio

ITEM = "demo:q1"


def correction(rationale: str, answer: str = "A", curator: str = "alice") -> Correction:
    return Correction(ITEM, "q1", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin C", "B": "Vitamin D"},
                      rationale, answer, gold_answer="A", dataset="demo", curator=curator)


@pytest.fixture
def studio(tmp_path) -> Studio:
    return Studio(lambda: None, AnnotationStore(tmp_path / "a.db"), [], mode="curator")


def revisions(studio: Studio) -> list[int]:
    return [r.revision for r in studio.store.history(ITEM)]


def test_the_revision_picker_starts_on_the_revision_before_the_latest():
    assert curating.revert_choice([1, 2, 3]) == 2
    assert curating.revert_choice([1]) == 1
    assert curating.revert_choice([]) is None


def test_reverting_to_the_current_revision_is_refused_and_writes_nothing(studio):
    studio.store.save(correction("first"))
    studio.store.save(correction("second", "B"))
    with pytest.raises(InputError, match="Revision 2 is already the current one.*Fix: pick an earlier revision"):
        curating.revert(studio, ITEM, 2, "carol")
    assert revisions(studio) == [1, 2]
    assert "saved as revision 3" in curating.revert(studio, ITEM, 1, "carol")
    assert studio.store.get(ITEM).correction.rationale == "first"


def test_reverting_the_only_revision_is_refused(studio):
    studio.store.save(correction("first"))
    with pytest.raises(InputError, match="only revision 1: there is no earlier one"):
        curating.revert(studio, ITEM, 1, "carol")
    assert revisions(studio) == [1]


def test_reverting_to_a_revision_that_holds_the_current_correction_is_refused(studio):
    studio.store.save(correction("first"))
    studio.store.save(correction("second", "B"))
    curating.revert(studio, ITEM, 1, "carol")  # revision 3 holds revision 1's correction
    with pytest.raises(InputError, match="same correction as the current revision 3.*Fix: pick a revision"):
        curating.revert(studio, ITEM, 1, "dave")
    assert revisions(studio) == [1, 2, 3]
    assert "saved as revision 4" in curating.revert(studio, ITEM, 2, "dave")


def test_two_reverts_at_the_same_moment_write_one_revision(tmp_path):
    """Carol and Dave revert to revision 1 at once: each checks the history before either writes. The second revert
    would change nothing, so it is refused, checked when it writes."""
    studio = Studio(lambda: None, WritesAtOnce(tmp_path / "a.db"), [], mode="curator")
    studio.store.save(correction("first"))
    studio.store.save(correction("second", "B"))
    studio.store.hold("carol", "dave")
    results = at_once(carol=lambda: curating.revert(studio, ITEM, 1, "carol"),
                      dave=lambda: curating.revert(studio, ITEM, 1, "dave"))
    assert results["carol"] == "Reverted demo:q1 to revision 1: saved as revision 3."
    assert isinstance(results["dave"], InputError)
    assert "same correction as the current revision 3" in str(results["dave"])
    assert [(r.revision, r.action, r.correction.curator) for r in AnnotationStore(tmp_path / "a.db").history(ITEM)] \
        == [(1, "save", "alice"), (2, "save", "alice"), (3, "revert", "carol")]

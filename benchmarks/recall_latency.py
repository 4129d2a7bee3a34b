"""How long recall takes as the store grows: re-reading the store after a save, and finding a question.

    python benchmarks/recall_latency.py [--corrections 200 2000 10000]

Fills a fresh SQLite store (in a temporary folder) with N saved corrections of OpenBookQA-like questions
written here (varied words, four options), then times `CorrectionRecall.from_store` (what the app does
once after each save) and `find` for a saved question and for an unsaved one (what every ask pays).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside
sys.path.insert(0, str(Path(__file__).resolve().parent))  # timing, beside this file

from timing import median_seconds  # noqa: E402

from kard.annotations import AnnotationStore, Correction  # noqa: E402
from kard.recall import CorrectionRecall  # noqa: E402
from kard.records import Question, item_id_for  # noqa: E402

WORDS = ("plant animal water light heat sound rock soil cloud river seed leaf moon sun star wind ice salt metal "
         "magnet energy food habitat season cell bone muscle blood gas liquid solid orbit gravity fossil").split()


def question(number: int, rng: random.Random) -> Question:
    text = "Which " + " ".join(rng.choice(WORDS) for _ in range(12)) + f" number {number}?"
    options = {letter: " ".join(rng.choice(WORDS) for _ in range(2)) for letter in "ABCD"}
    return Question(f"q{number}", text, options, "A", "obqa")


def fill(store: AnnotationStore, questions: list[Question]) -> None:
    for q in questions:
        store.save(Correction(item_id=item_id_for(q), question_id=q.id, question=q.text, options=dict(q.options),
                              rationale=f"{q.options['A']} is what it takes. So the answer is {q.options['A']}.",
                              answer="A", gold_answer="A", dataset=q.dataset, curator="bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corrections", type=int, nargs="+", default=[200, 2000, 10000])
    args = parser.parse_args()
    rng = random.Random(0)
    print("| saved corrections | re-read the store (s) | find, a saved question (ms) | find, an unsaved one (ms) |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for n in args.corrections:
            store = AnnotationStore(Path(folder) / f"{n}.db")
            questions = [question(i, rng) for i in range(n)]
            fill(store, questions)
            recall = CorrectionRecall.from_store(store)
            reread = median_seconds(lambda: CorrectionRecall.from_store(store), 3, warm_up=False)
            saved = median_seconds(lambda: recall.find(questions[n // 2]), 50, warm_up=False)
            unsaved = median_seconds(lambda: recall.find(question(n + 1, rng)), 50, warm_up=False)
            print(f"| {n:,} | {reread:.2f} | {1000 * saved:.3f} | {1000 * unsaved:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Self-replay: the replay examples of a retrain round, answered by the student being retrained.

A round retrains the student on its corrections mixed with a replay sample of training examples, so it
does not drift away from what it learned. When that replay keeps the teacher's targets, the round also
re-fits every teacher rationale the student does not reproduce, and answers to questions nobody
corrected change with it. Replaying the student's own greedy outputs instead (rehearsal with
self-generated targets) leaves the replay with little to teach, so that, in principle, what moves the
student is the corrections. Measured (docs/closing_the_loop.md, 5f): on StrategyQA it did not hold the
shipped student's yes/no prior, so `kard retrain` does not use it; benchmarks/loop_experiment.py
offers it as `--replay own`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from kard.config import GenerationConfig
from kard.distill import StudentExample
from kard.prompts import student_target

if TYPE_CHECKING:
    from kard.student import Student

log = logging.getLogger(__name__)
SOURCE = "self-replay"


def own_targets(student: "Student", examples: Sequence[StudentExample], max_new_tokens: int,
                batch_size: int = 16) -> list[StudentExample]:
    """Each example with the student's own greedy rationale and answer as its target.

    An example whose output has no readable answer line (it ran out of tokens) keeps its original
    target, so the round never learns to leave a question unanswered.
    """
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    replayed: list[StudentExample] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        samples = student.generate_batch([e.input for e in batch], config)
        for example, sample in zip(batch, samples):
            if sample.answer is None:
                replayed.append(example)
                continue
            replayed.append(replace(example, target=student_target(sample.rationale, sample.answer), source=SOURCE))
    kept = sum(e.source != SOURCE for e in replayed)
    log.info("self-replay: %d of %d examples answered by %s (%d kept their original target)",
             len(replayed) - kept, len(replayed), student.name, kept)
    return replayed

"""Self-replay (kard.loop.self_replay): a retrain round can rehearse the student's own answers instead of
the teacher's targets. If the replacement went wrong, a round would train on the wrong text or learn to
leave questions unanswered."""

from __future__ import annotations

from kard.distill import StudentExample
from kard.loop.self_replay import SOURCE, own_targets
from kard.student import make_sample


class ScriptedStudent:
    """Answers each prompt with a fixed output, as Student.generate_batch would (greedy, batched)."""

    name = "scripted"

    def __init__(self, outputs: dict[str, str]):
        self.outputs = outputs
        self.batches: list[int] = []

    def generate_batch(self, prompts, config, *, letters=()):
        self.batches.append(len(prompts))
        assert config.samples == 1
        return [make_sample(self.outputs[p], ("A", "B"), tokens_out=5) for p in prompts]


def example(n: int) -> StudentExample:
    return StudentExample(f"e{n}", f"question {n}", " The teacher's rationale.\nAnswer: A", "teacher:gpt-4", ("p1",), f"q{n}")


def test_each_example_gets_the_students_own_answer():
    student = ScriptedStudent({"question 0": "Bacon comes from pigs. So the answer is no.\nAnswer: B",
                               "question 1": "Peppers are hot.\nAnswer: A",
                               "question 2": "Cows give milk."})
    replayed = own_targets(student, [example(0), example(1), example(2)], max_new_tokens=32, batch_size=2)
    assert student.batches == [2, 1]
    assert replayed[0].target == " Bacon comes from pigs. So the answer is no.\nAnswer: B"
    assert replayed[1].target == " Peppers are hot.\nAnswer: A"
    assert [e.source for e in replayed[:2]] == [SOURCE, SOURCE]
    assert (replayed[0].input, replayed[0].passage_ids, replayed[0].question_id) == ("question 0", ("p1",), "q0")


def test_an_output_without_an_answer_line_keeps_the_original_target():
    replayed = own_targets(ScriptedStudent({"question 2": "Cows give milk and"}), [example(2)], max_new_tokens=4)
    assert replayed == [example(2)]

"""Checkpoint choice by dev-slice accuracy: every kept checkpoint of a LoRA run answers the same questions,
the most accurate is chosen (ties keep the later one) and copied as a loadable adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("peft")

from kard.__main__ import main  # noqa: E402
from kard.checkpoints import CheckpointScore, best_checkpoint, run_candidates  # noqa: E402
from kard.config import StudentTrainingConfig  # noqa: E402
from kard.distill import StudentExample  # noqa: E402
from kard.errors import ConfigError  # noqa: E402
from kard.metrics import Score  # noqa: E402
from kard.model_source import adapter_base  # noqa: E402
from kard.student import Student  # noqa: E402
from kard.training import train_student  # noqa: E402
from tests.tiny_models import save_tiny_decoder  # noqa: E402

EXAMPLES = [StudentExample(f"q{i}#0", f"Question: Which gas do plants absorb? {letter}\nExplanation:",
                           f" Plants absorb carbon dioxide.\nAnswer: {letter}", "teacher", ("p1",), f"q{i}")
            for i, letter in enumerate("ABAB")]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """A tiny LoRA run keeping its checkpoints at steps 2, 4 and 6, and the final adapter."""
    root = tmp_path_factory.mktemp("pick")
    base = save_tiny_decoder(root / "base", max_positions=2048)
    config = StudentTrainingConfig(learning_rate=2e-2, max_steps=6, batch_size=2, grad_accum=1, warmup_ratio=0.0,
                                   save_steps=2, keep_checkpoints=3, logging_steps=1, lora=True, lora_r=4, lora_alpha=8,
                                   merge_lora=False, base_student=str(base))
    train_student(Student.load(base), EXAMPLES, root / "run", config, progress=False)
    return root / "run"


def score(name: str, right: int) -> CheckpointScore:
    return CheckpointScore(name, Path(name), Score(10, right, 0))


def test_the_most_accurate_wins_and_a_tie_keeps_the_later():
    assert best_checkpoint([score("checkpoint-3", 6), score("checkpoint-6", 4), score("final", 5)]).name == "checkpoint-3"
    assert best_checkpoint([score("checkpoint-3", 5), score("checkpoint-6", 5), score("final", 5)]).name == "final"
    assert best_checkpoint([score("checkpoint-3", 5), score("checkpoint-6", 7), score("final", 7)]).name == "final"


def test_candidates_are_the_kept_checkpoints_by_step_then_the_final(lora_run):
    assert [name for name, _ in run_candidates(lora_run)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "final"]


def test_a_folder_without_adapters_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="--keep-adapter"):
        run_candidates(tmp_path)


def test_a_checkpoint_past_the_runs_last_step_is_refused_as_another_runs(lora_run, tmp_path):
    import shutil

    run = shutil.copytree(lora_run, tmp_path / "run")
    # an earlier, longer run
    shutil.copytree(run / "checkpoints" / "checkpoint-6", run / "checkpoints" / "checkpoint-8")
    with pytest.raises(ConfigError, match=r"checkpoint-8 in .* past its run's last step \(6\).*--overwrite"):
        run_candidates(run)


def test_keeping_no_checkpoint_is_refused():
    from kard.training import _check_config

    with pytest.raises(ConfigError, match="--keep-checkpoints"):
        _check_config(StudentTrainingConfig(max_steps=1, keep_checkpoints=0))


def test_pick_checkpoint_scores_each_on_the_same_questions_and_adopts_the_best(lora_run, tmp_path, capsys):
    out, adopted = tmp_path / "pick", tmp_path / "chosen"
    assert main(["pick-checkpoint", "--run", str(lora_run), "--dataset", "demo", "--limit", "3",
                 "--max-new-tokens", "8", "--out", str(out), "--adopt", str(adopted), "--no-progress"]) == 0
    choice = json.loads((out / "checkpoint_choice.json").read_text())
    assert [row["name"] for row in choice["scores"]] == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "final"]
    assert all(row["total"] == 3 for row in choice["scores"])
    for row in choice["scores"]:  # each candidate's own answers, kept for resuming
        assert len((out / f"{row['name']}.jsonl").read_text().splitlines()) == 3
    best = max(row["right"] for row in choice["scores"])
    chosen = choice["chosen"]
    assert next(r for r in choice["scores"] if r["name"] == chosen)["right"] == best
    assert f"chosen: {chosen}" in capsys.readouterr().out
    source = lora_run if chosen == "final" else lora_run / "checkpoints" / chosen
    assert (adopted / "adapter_model.safetensors").read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    recorded = json.loads((adopted / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded.startswith(".")  # relative to the adopted folder, which is not the run's
    assert Path(adapter_base(adopted)).resolve() == Path(adapter_base(lora_run)).resolve()
    Student.load(adopted)


@pytest.fixture(scope="module")
def continued_run(lora_run, tmp_path_factory) -> Path:
    """A LoRA run continued from `lora_run`'s adapter (as `--student ADAPTER --lora --keep-adapter` trains),
    checkpoints at steps 1 and 2: checkpoint-2 holds the final adapter's tensors."""
    config = StudentTrainingConfig(learning_rate=2e-2, max_steps=2, batch_size=2, grad_accum=1, warmup_ratio=0.0,
                                   save_steps=1, keep_checkpoints=3, logging_steps=1, lora=True, lora_r=4, lora_alpha=8,
                                   merge_lora=False, base_student=str(lora_run))
    run = tmp_path_factory.mktemp("continued") / "run"
    train_student(Student.load(lora_run), EXAMPLES, run, config, progress=False)
    return run


def test_a_continued_runs_checkpoints_record_the_adapter_it_continued_as_their_base(continued_run, lora_run):
    for checkpoint in (continued_run / "checkpoints").glob("checkpoint-*"):
        recorded = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert recorded.startswith(".")  # portable: relative to the checkpoint, as the final adapter's is
        assert Path(adapter_base(checkpoint)).resolve() == lora_run.resolve()


def test_pick_checkpoint_loads_an_older_checkpoint_on_the_runs_base_chain(continued_run, lora_run, tmp_path):
    import shutil

    run = shutil.copytree(continued_run, tmp_path / "run")
    checkpoint = run / "checkpoints" / "checkpoint-2"
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(lora_run.parent / "base")  # what peft wrote before: no first adapter
    (checkpoint / "adapter_config.json").write_text(json.dumps(config))
    out, adopted = tmp_path / "pick", tmp_path / "chosen"
    assert main(["pick-checkpoint", "--run", str(run), "--dataset", "demo", "--limit", "2", "--max-new-tokens", "8",
                 "--out", str(out), "--adopt", str(adopted), "--no-progress"]) == 0

    def answers(name: str) -> list[str]:
        return [json.loads(line)["rationale"] for line in (out / f"{name}.jsonl").read_text().splitlines()]

    assert answers("checkpoint-2") == answers("final")  # the same tensors on the same base chain
    assert Path(adapter_base(adopted)).resolve() == lora_run.resolve()
    assert json.loads((adopted / "adapter_config.json").read_text())["base_model_name_or_path"].startswith(".")

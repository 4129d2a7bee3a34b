"""Student training: tiny decoder-only and T5 students learn a few steps, save, resume; bad inputs refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tiny_models import save_tiny_decoder, save_tiny_t5  # noqa: E402

from kard.config import GenerationConfig, StudentTrainingConfig  # noqa: E402
from kard.distill import StudentExample  # noqa: E402
from kard.errors import ConfigError, DataError, ModelNotFoundError  # noqa: E402
from kard.student import Student  # noqa: E402
from kard.training import (  # noqa: E402
    GB,
    OutOfMemoryRisk,
    check_memory,
    describe_budget,
    encode_examples,
    estimate_memory,
    optimizer_steps,
    _without_emulated_bf16,
    train_student,
)

EXAMPLES = [
    StudentExample(f"q{i}#0", f"Question: Which gas do plants absorb? {letter}\nExplanation:",
                   f" Plants absorb carbon dioxide.\nAnswer: {letter}", "teacher", ("p1",), f"q{i}")
    for i, letter in enumerate("ABAB")
]
FAST = StudentTrainingConfig(learning_rate=1e-2, max_steps=12, batch_size=2, grad_accum=1, warmup_ratio=0.0,
                             save_steps=6, logging_steps=1, check_memory=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-students")
    return {"decoder": save_tiny_decoder(root / "decoder"), "t5": save_tiny_t5(root / "t5")}


def weights(student: Student) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in student.model.named_parameters()}


@pytest.mark.parametrize("kind", ["decoder", "t5"])
def test_tiny_student_learns_saves_and_reloads(kind, folders, tmp_path):
    student = Student.load(folders[kind])
    before = weights(student)
    result = train_student(student, EXAMPLES, tmp_path / "out", FAST, progress=False)
    losses = [row["loss"] for row in result.losses]
    assert result.steps == 12 and len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.75 * sum(losses[:3]) / 3
    after = weights(student)
    assert all(not torch.equal(before[name], after[name]) for name in ("lm_head.weight",) if name in before)
    assert sum(not torch.equal(before[n], after[n]) for n in before) > len(before) // 2
    assert result.seconds_per_step > 0 and result.peak_rss_mb > 0 and result.max_length > 0

    saved = json.loads((tmp_path / "out" / "kard_training.json").read_text())
    assert saved["config"]["learning_rate"] == 1e-2 and saved["data"]["examples"] == 4
    assert saved["prompt_version"] and saved["result"]["steps"] == 12
    assert [json.loads(x)["loss"] for x in (tmp_path / "out" / "losses.jsonl").read_text().splitlines()] == losses
    reloaded = Student.load(tmp_path / "out")
    assert reloaded.is_encoder_decoder == (kind == "t5")
    for name, tensor in weights(reloaded).items():
        assert torch.allclose(tensor, after[name]), name


def test_prompt_is_masked_and_length_is_fitted_to_the_data(folders):
    student = Student.load(folders["decoder"])
    encoded, max_length, cut = encode_examples(student, EXAMPLES, FAST)
    longest = max(len(row["input_ids"]) for row in encoded)
    assert max_length == longest and cut == 0
    for row, example in zip(encoded, EXAMPLES):
        target = [t for t in row["labels"] if t != -100]
        assert row["labels"][: len(row["labels"]) - len(target)] == [-100] * (len(row["labels"]) - len(target))
        assert student.decode(target).strip().endswith(example.target.strip()[-9:])
    capped, max_length, cut = encode_examples(student, EXAMPLES, replace(FAST, max_length_cap=longest - 4))
    assert max_length == longest - 4 and cut == 4 and all(len(r["input_ids"]) <= longest - 4 for r in capped)


def test_resume_continues_from_the_last_checkpoint(folders, tmp_path):
    out = tmp_path / "run"
    train_student(Student.load(folders["decoder"]), EXAMPLES, out, replace(FAST, max_steps=6), progress=False)
    assert (out / "checkpoints" / "checkpoint-6").is_dir()
    resumed = train_student(Student.load(folders["decoder"]), EXAMPLES, out, replace(FAST, max_steps=9),
                            resume=True, progress=False)
    assert resumed.steps == 9
    assert [row["step"] for row in resumed.losses] == list(range(1, 10))  # history carried over from step 6


def test_lora_trains_adapters_and_saves_merged_weights(folders, tmp_path):
    student = Student.load(folders["decoder"])
    before = weights(student)
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=2e-2)
    result = train_student(student, EXAMPLES, tmp_path / "lora", config, progress=False)
    losses = [row["loss"] for row in result.losses]
    assert losses[-1] < losses[0]
    assert not hasattr(student.model, "peft_config")
    after = weights(student)
    assert set(after) == set(before)
    assert any(not torch.equal(before[n], after[n]) for n in before if "proj" in n)
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    Student.load(tmp_path / "lora")


def test_memory_estimate_matches_the_measured_smollm2_step():
    """The design's measurement: SmolLM2-135M, batch 8 x 640 tokens, full fine-tuning, ~14 GB peak."""
    from transformers import LlamaConfig

    class Shape:  # the real model's shape without building 135M parameters
        config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, vocab_size=49152)

        def parameters(self):
            return [torch.empty(134_515_008, dtype=torch.float32, device="meta")]

    estimate = estimate_memory(Shape(), 8, 640, StudentTrainingConfig())
    assert 12 * GB < estimate.total < 16 * GB
    lora = estimate_memory(Shape(), 8, 640, StudentTrainingConfig(lora=True))
    checkpointed = estimate_memory(Shape(), 8, 640, StudentTrainingConfig(gradient_checkpointing=True))
    assert lora.gradients_and_optimizer < estimate.gradients_and_optimizer / 20
    assert checkpointed.activations < estimate.activations / 2


def test_a_batch_that_cannot_fit_is_refused_with_the_numbers(folders, tmp_path):
    student = Student.load(folders["decoder"])
    estimate = estimate_memory(student.model, 64, 200, FAST)
    free = (estimate.total - estimate.weights) // 3
    with pytest.raises(OutOfMemoryRisk, match=r"batch of 64 x 200 tokens needs about .* GB .* only 0\.\d GB .*"
                                              r"Fix: --batch-size \d+ --grad-accum \d+"):
        check_memory(student.model, 64, 200, FAST, available=free)
    with pytest.raises(OutOfMemoryRisk, match="even batch size 1 does not fit"):
        check_memory(student.model, 64, 200, FAST, available=1)
    assert check_memory(student.model, 2, 50, FAST, available=64 * GB).total > 0
    with pytest.raises(OutOfMemoryRisk):
        train_student(student, EXAMPLES, tmp_path, replace(FAST, batch_size=10**6), progress=False)


def test_bad_inputs(folders, tmp_path):
    student = Student.load(folders["decoder"])
    with pytest.raises(DataError, match="no training examples"):
        train_student(student, [], tmp_path, FAST, progress=False)
    with pytest.raises(ConfigError, match="at least 1"):
        train_student(student, EXAMPLES, tmp_path, replace(FAST, batch_size=0), progress=False)
    with pytest.raises(ConfigError, match="nothing to train"):
        train_student(student, EXAMPLES, tmp_path, replace(FAST, max_steps=0, epochs=0), progress=False)
    with pytest.raises(DataError, match=r"1 example\(s\) have no target tokens left \(q0#0\)"):
        encode_examples(_NothingToLearn(student), EXAMPLES[:1], FAST)


class _NothingToLearn:
    """A student whose encoding leaves every label masked (what a cut-away target would give)."""

    def __init__(self, student: Student):
        self._student = student
        self.is_encoder_decoder = False
        self.context_length = student.context_length

    def encode_example(self, prompt: str, target: str, max_length: int) -> dict:
        row = self._student.encode_example(prompt, target, max_length)
        return {**row, "labels": [-100] * len(row["labels"])}


def test_lora_adapter_alone_is_saved_small_and_loads_onto_its_base(folders, tmp_path):
    student = Student.load(folders["decoder"])
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, learning_rate=2e-2, merge_lora=False,
                     base_student=str(folders["decoder"]))
    train_student(student, EXAMPLES, tmp_path / "adapter", config, progress=False)
    saved = tmp_path / "adapter"
    assert (saved / "adapter_config.json").is_file() and not (saved / "config.json").exists()
    recorded = json.loads((saved / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded.startswith(".") and (saved / recorded).resolve() == Path(folders["decoder"]).resolve()
    assert not (saved / "README.md").exists()  # peft's model card would name this machine's cache path
    reloaded = Student.load(saved)
    assert not hasattr(reloaded.model, "peft_config")  # merged on load: plain weights to run
    prompt = EXAMPLES[0].input
    trained = student.model.merge_and_unload() if hasattr(student.model, "merge_and_unload") else student.model
    student.model = trained.eval()
    assert reloaded.generate(prompt)[0].raw_output == student.generate(prompt)[0].raw_output


def test_bf16_on_a_cpu_that_would_emulate_it_trains_in_float32_and_says_so(folders, tmp_path, monkeypatch, caplog):
    """An AVX2-only CPU has no bf16 units: autocast there took 9 minutes a step, so float32 is used instead."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("WARNING", logger="kard.training"):
        train_student(Student.load(folders["decoder"]), EXAMPLES, tmp_path / "out", replace(FAST, max_steps=2, bf16=True),
                      progress=False)
    assert "neither AMX nor AVX512-BF16" in caplog.text and "Fix: drop --bf16" in caplog.text
    assert json.loads((tmp_path / "out" / "kard_training.json").read_text())["config"]["bf16"] is False


def test_bf16_is_kept_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _without_emulated_bf16(replace(FAST, bf16=True)).bf16 is True


def test_budget_line_states_effective_batch_steps_and_epochs():
    line = describe_budget(StudentTrainingConfig(batch_size=8, grad_accum=4, max_steps=160), 6991)
    assert line == "effective batch 32 (8 x 4 accumulation), 160 optimizer steps = 0.73 epochs of 6991 examples"
    by_epochs = StudentTrainingConfig(batch_size=4, grad_accum=8, epochs=2.0, max_steps=0)
    assert optimizer_steps(by_epochs, 320) == 20


def test_an_adapter_trained_on_an_adapter_student_loads_through_the_chain(folders, tmp_path):
    """`train-student --student ADAPTER --lora --keep-adapter` (continuing the shipped student) names an
    adapter folder as its base: loading it merges both adapters in order, and a loop is refused."""
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, learning_rate=2e-2, merge_lora=False)
    first = tmp_path / "first"
    train_student(Student.load(folders["decoder"]), EXAMPLES, first, config, progress=False)
    continued = Student.load(first)
    second = tmp_path / "second"
    train_student(continued, EXAMPLES[:2], second, replace(config, seed=1), progress=False)
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == "../first"
    continued.model = continued.model.merge_and_unload().eval()
    reloaded = Student.load(second)
    assert reloaded.sources == (str(second), str(first), str(folders["decoder"]))
    prompt = EXAMPLES[1].input
    assert reloaded.generate(prompt)[0].raw_output == continued.generate(prompt)[0].raw_output
    first_only = Student.load(first).model
    assert any(not torch.equal(a, b) for a, b in zip(reloaded.model.parameters(), first_only.parameters()))

    config_path = first / "adapter_config.json"
    looped = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**looped, "base_model_name_or_path": str(second)}))
    with pytest.raises(ModelNotFoundError, match="leads back to itself"):
        Student.load(second)


def test_a_continued_adapter_loads_from_any_directory(folders, tmp_path, monkeypatch):
    """Continuing `--student first` from the folder above records the base relative to the new adapter
    (not to the directory training ran in), so the chain still loads from elsewhere or after a move."""
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, learning_rate=2e-2, merge_lora=False)
    runs = tmp_path / "runs"
    train_student(Student.load(folders["decoder"]), EXAMPLES, runs / "first", config, progress=False)
    monkeypatch.chdir(runs)
    train_student(Student.load("first"), EXAMPLES[:2], Path("second"), replace(config, seed=1), progress=False)
    assert json.loads((runs / "second" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../first"
    expected = Student.load("second").generate(EXAMPLES[1].input)[0].raw_output

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert Student.load(runs / "second").generate(EXAMPLES[1].input)[0].raw_output == expected
    moved = tmp_path / "moved"
    runs.rename(moved)
    assert Student.load(moved / "second").generate(EXAMPLES[1].input)[0].raw_output == expected


def test_full_fine_tuning_of_an_adapter_student_trains_every_weight(folders, tmp_path):
    """The app's Retrain (full fine-tuning by default) starts from the shipped student, a LoRA adapter merged on
    load: peft leaves the merged weights frozen, and training failed with "element 0 of tensors does not require
    grad". Full fine-tuning unfreezes them, as a model loaded from plain weights is."""
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, learning_rate=2e-2, merge_lora=False)
    train_student(Student.load(folders["decoder"]), EXAMPLES, tmp_path / "adapter", config, progress=False)
    student = Student.load(tmp_path / "adapter")
    before = weights(student)
    result = train_student(student, EXAMPLES, tmp_path / "full", replace(FAST, max_steps=3), progress=False)
    assert result.steps == 3
    after = weights(student)
    assert sum(not torch.equal(before[n], after[n]) for n in before) > len(before) // 2


def test_an_adapter_folder_called_student_is_named_with_its_parent(folders, tmp_path):
    """demo/student and each round's round-NNN/student: the page and results say which student answered."""
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, merge_lora=False, max_steps=1)
    train_student(Student.load(folders["decoder"]), EXAMPLES, tmp_path / "round-002" / "student", config, progress=False)
    assert Student.load(tmp_path / "round-002" / "student").name == "round-002/student"
    train_student(Student.load(folders["decoder"]), EXAMPLES, tmp_path / "kard-r16", config, progress=False)
    assert Student.load(tmp_path / "kard-r16").name == "kard-r16"


def test_an_adapter_student_records_its_base_model_for_the_page(folders, tmp_path):
    """The app's student card named only "demo/student": the loaded adapter student now says which base model its
    LoRA weights were merged into, and every answer's decoding settings carry it; a plain model has none."""
    config = replace(FAST, lora=True, lora_r=4, lora_alpha=8, merge_lora=False, max_steps=1)
    train_student(Student.load(folders["decoder"]), EXAMPLES, tmp_path / "demo" / "student", config, progress=False)
    adapter = Student.load(tmp_path / "demo" / "student")
    assert adapter.base == "decoder" and adapter.decoding_settings(GenerationConfig())["base_model"] == "decoder"
    train_student(adapter, EXAMPLES[:2], tmp_path / "continued", config, progress=False)
    assert Student.load(tmp_path / "continued").base == "decoder"  # a chain names the model at its root
    plain = Student.load(folders["decoder"])
    assert plain.base is None and "base_model" not in plain.decoding_settings(GenerationConfig())

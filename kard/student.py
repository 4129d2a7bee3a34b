"""The student: one small language model behind one interface, decoder-only or encoder-decoder.

`Student.load` takes a folder, a Hugging Face hub id, a `.gguf` file, `package:NAME` (a GGUF file inside
an installed Python package), or a LoRA adapter folder (merged into its base on load); kard.model_source
finds and, for GGUF files, converts the weights.

Whether the model is a decoder-only (GPT/Llama-style) or an encoder-decoder (T5-style) model comes
from its own config (`config.is_encoder_decoder`); callers never ask.

Prompt wrapping (one code path for training and inference): when the model is decoder-only and its
tokenizer has a chat template (SmolLM2-Instruct does), the KARD prompt is sent as one user turn with
the assistant turn opened (`add_generation_prompt=True`), and the model writes the rationale as the
assistant. Instruct models follow the instruction far better in the format they were tuned on, and
`encode_example` uses the very same `prompt_ids` so a fine-tuned student sees at training time
exactly the tokens it sees at inference. Models without a chat template (base models, T5) get the
plain prompt.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from queue import Empty
from typing import Any, Callable, Iterator, Sequence

from kard.config import DEFAULT_STUDENT, GenerationConfig
from kard.engine import TRANSFORMERS, CTranslate2Engine, Sampling, check_engine, load_engine
from kard.errors import ConfigError, MissingDependencyError, ModelNotFoundError
from kard.model_source import (
    ADAPTER_CONFIG, adapter_base, adapter_folder, check_adapter_weights, load_model, model_label, resolve,
)
from kard.prompts import parse_answer
from kard.records import Sample

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")
"""float32: exact and the default; bfloat16: ~1.5x faster generation on recent CPUs, slightly different text."""
DEVICES = ("auto", "cpu", "cuda")

_KEEP_PROMPT_TAIL = 16  # tokens kept from the end of an over-long training prompt: "Explanation:" + turn header
PROMPT_LOOKUP_TOKENS = 10
"""Greedy decoding of one sequence drafts up to this many tokens by copying from the prompt (a KARD
rationale quotes its passages) and keeps those the model itself would have chosen: the same tokens as
plain greedy decoding, in fewer forward passes (how much time that saves depends on the machine and the
student: 1.9x and 1.0x on two 2-core VMs, benchmarks/README.md)."""


def resolve_device(device: str, engine: str = TRANSFORMERS) -> str:
    """cpu or cuda: `auto` is cuda when torch sees a GPU and transformers decodes (CTranslate2 runs on the
    CPU here); cuda without a GPU is refused with the fix."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}. Fix: use one of {', '.join(DEVICES)}")
    if device == "cpu" or (device == "auto" and engine != TRANSFORMERS):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ConfigError("no CUDA GPU is visible to torch. Fix: use --device cpu (or auto), or install a CUDA "
                          "build of torch on a machine with a GPU")
    return "cpu"


# ---------------------------------------------------------------- the student



def adapter_label(adapter: Path) -> str:
    """An adapter student's name: its folder's, with the parent folder's where that name alone says nothing
    ("student": demo/student, round-002/student), so the page, logs and results say which student answered."""
    folder = adapter.resolve()
    return f"{folder.parent.name}/{folder.name}" if folder.name == "student" else folder.name

class Student:
    """A loaded model and tokenizer with KARD's generate / stream / encode_example."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "student", location: str | None = None,
                 sources: Sequence[str] = (), base: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.location = location or name  # where it was loaded from: what tells two students apart
        self.sources = tuple(sources) or (self.location,)  # the folders its weights came from (adapter + base)
        self.base = base  # an adapter student's base model as a person reads it (SmolLM2-135M-Instruct); else None
        self.engine: CTranslate2Engine | None = None  # None: transformers decodes (see use_engine)
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.uses_chat_template = not self.is_encoder_decoder and bool(getattr(tokenizer, "chat_template", None))
        self._lock = threading.Lock()  # one generation at a time: seeding uses torch's global RNG

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str] = DEFAULT_STUDENT, dtype: str = "float32",
             engine: str = TRANSFORMERS, device: str = "cpu", base: str | None = None) -> "Student":
        """Load from a folder, a hub id, a .gguf file or `package:NAME`; dtype float32 or bfloat16.

        `engine` decodes the answers: transformers (the reference), ctranslate2, or auto (CTranslate2
        when it loads, else transformers with one warning line); see kard.engine. `device` is where
        transformers runs the model: cpu, cuda, or auto (cuda when a GPU is visible and transformers decodes).
        `base`, for a LoRA adapter folder: the student it is merged into instead of the one it records.
        """
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}. Fix: use one of {', '.join(DTYPES)}")
        check_engine(engine)
        device = resolve_device(device, engine)
        if device != "cpu" and engine != TRANSFORMERS:
            raise ConfigError(f"the {engine} engine runs on the CPU here. Fix: use --engine transformers on {device}, "
                              "or --device cpu")
        adapter = adapter_folder(name_or_path)
        if adapter is not None:
            student = cls._load_with_adapter(adapter, dtype, base_spec=base)
        else:
            source = resolve(name_or_path)
            started = time.perf_counter()
            model, tokenizer = load_model(source, dtype)
            log.info("loaded student %s (%s) in %.1f s", source.name, dtype, time.perf_counter() - started)
            student = cls(model, tokenizer, name=source.name, location=source.location)
        if device != "cpu":
            student.model.to(device)
        return student.use_engine(engine)

    def use_engine(self, engine: str) -> "Student":
        """Decode with `engine` from now on (transformers, ctranslate2 or auto); returns the student."""
        self.engine = load_engine(self, engine)
        return self

    @property
    def engine_name(self) -> str:
        return self.engine.name if self.engine is not None else TRANSFORMERS

    @classmethod
    def _load_with_adapter(cls, adapter: Path, dtype: str, chain: tuple[Path, ...] = (),
                           base_spec: str | None = None) -> "Student":
        """The adapter's base model with the LoRA weights merged in (plain weights: fast to run).

        The base may itself be an adapter folder (an adapter trained on top of another adapter student,
        as `train-student --student demo/student --lora --keep-adapter` writes): it is loaded the same way
        first, so a chain of adapters ends on a model folder, hub id or package.
        """
        if importlib.util.find_spec("peft") is None:
            raise MissingDependencyError("peft", "Loading a LoRA student adapter")
        from peft import PeftModel

        check_adapter_weights(adapter)  # before the base loads: a copy without its weights fails at once
        chain = (*chain, adapter.resolve())
        base_name = base_spec or adapter_base(adapter)
        started = time.perf_counter()
        base_adapter = adapter_folder(base_name)
        if base_adapter is not None:
            if base_adapter.resolve() in chain:
                raise ModelNotFoundError(f"{adapter / 'adapter_config.json'} names {base_name} as its base, which "
                                         "leads back to itself. Fix: set base_model_name_or_path to the model it "
                                         f"was trained on (for example '{DEFAULT_STUDENT}')")
            base = cls._load_with_adapter(base_adapter, dtype, chain)
            model, tokenizer, base_sources = base.model, base.tokenizer, base.sources
            base_label = base.base or base.name
        else:
            _check_base_there(adapter, base_name)
            source = resolve(base_name)
            model, tokenizer = load_model(source, dtype)
            base_sources, base_label = (source.location,), model_label(base_name)
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        log.info("loaded student %s (base %s + LoRA adapter, %s) in %.1f s", adapter.name, base_name, dtype,
                 time.perf_counter() - started)
        return cls(model, tokenizer, name=adapter_label(adapter), location=str(adapter),
                   sources=(str(adapter), *base_sources), base=base_label)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return folder

    # ------------------------------------------------------------ tokens

    @property
    def dtype(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    @property
    def context_length(self) -> int | None:
        """Most tokens the model can attend to (None = no fixed limit, e.g. T5's relative positions)."""
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def wrap(self, prompt: str) -> str:
        """The text the model reads for a KARD prompt: a chat user turn when the tokenizer has a template."""
        if not self.uses_chat_template:
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a KARD prompt, exactly as both generation and training feed them."""
        wrapped = self.wrap(prompt)
        # A chat template already writes its special tokens; plain prompts get the tokenizer's own (BOS, </s>).
        return list(self.tokenizer(wrapped, add_special_tokens=not self.uses_chat_template)["input_ids"])

    def count_tokens(self, prompt: str) -> int:
        return len(self.prompt_ids(prompt))

    def text_ids(self, text: str) -> list[int]:
        """Ids of a bare piece of text (no special tokens), for cutting passages to a token budget."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @property
    def eos_token_id(self) -> int | None:
        eos = self.tokenizer.eos_token_id
        return eos if eos is not None else getattr(self.model.config, "eos_token_id", None)

    def encode_example(
        self, prompt: str, target: str, max_length: int = 512, max_target_length: int | None = None
    ) -> dict[str, list[int]]:
        """Training tensors (as lists) for one (prompt, target) pair.

        Decoder-only: input = prompt ids + target ids + EOS, labels = -100 over the prompt, the target
        ids (and EOS) after it; `max_length` caps the whole sequence. The target keeps up to
        `max_target_length` tokens (default max_length // 2); an over-long prompt loses its middle
        (where the knowledge sits), keeping its head and its last tokens ("Explanation:" and the turn
        header), so the model still learns to answer from the same position as at inference. Cut
        passages before calling this (kard.pipeline.fit_prompt) to drop whole passages instead.
        Encoder-decoder: input = prompt ids (cut to max_length), labels = target ids + EOS.
        """
        if max_length < 2 * _KEEP_PROMPT_TAIL:
            raise ConfigError(f"max_length {max_length} is too small. Fix: use at least {2 * _KEEP_PROMPT_TAIL}")
        prompt_ids = self.prompt_ids(prompt)
        if self.is_encoder_decoder:
            labels = list(self.tokenizer(target)["input_ids"])
            if self.eos_token_id is not None and labels[-1:] != [self.eos_token_id]:
                labels.append(self.eos_token_id)
            labels = labels[: max_target_length or max_length]
            ids = prompt_ids if len(prompt_ids) <= max_length else prompt_ids[: max_length - 1] + prompt_ids[-1:]
            return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
        eos = [self.eos_token_id] if self.eos_token_id is not None else []
        target_ids = (self.text_ids(target) + eos)[: max_target_length or max_length // 2]
        budget = max_length - len(target_ids)
        if len(prompt_ids) > budget:
            prompt_ids = prompt_ids[: budget - _KEEP_PROMPT_TAIL] + prompt_ids[-_KEEP_PROMPT_TAIL:]
        ids = prompt_ids + target_ids
        return {
            "input_ids": ids,
            "attention_mask": [1] * len(ids),
            "labels": [-100] * len(prompt_ids) + target_ids,
        }

    # ------------------------------------------------------------ decoding

    def decoding_settings(self, config: GenerationConfig) -> dict[str, object]:
        """What a Prediction records about how it was decoded."""
        settings: dict[str, object] = {
            "strategy": "greedy" if config.samples <= 1 else "self-consistency",
            "samples": max(1, config.samples),
            "max_new_tokens": config.max_new_tokens,
            "max_input_tokens": config.max_input_tokens,
            "chat_template": self.uses_chat_template,
            "dtype": self.dtype,
            "engine": self.engine_name,
        }
        if self.base:
            settings["base_model"] = self.base
        if config.samples > 1:
            settings.update(top_k=config.top_k, top_p=config.top_p, temperature=config.temperature, seed=config.seed)
        return settings

    def _generate_kwargs(self, prompt: str, config: GenerationConfig, sampled: bool, n: int) -> dict[str, Any]:
        import torch

        self._check_new_tokens(config)
        ids = torch.tensor([self.prompt_ids(prompt)], dtype=torch.long)
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": config.max_new_tokens,
            "num_return_sequences": n,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id,
        }
        if sampled:
            kwargs.update(do_sample=True, top_k=config.top_k, top_p=config.top_p, temperature=config.temperature)
        else:
            kwargs.update(do_sample=False, top_k=None, top_p=None, temperature=None)
        return kwargs

    def _one_greedy_sequence(self, kwargs: dict[str, Any]) -> None:
        """Prompt lookup decoding for one greedy sequence of a decoder-only model (PROMPT_LOOKUP_TOKENS)."""
        if not self.is_encoder_decoder:
            kwargs["prompt_lookup_num_tokens"] = PROMPT_LOOKUP_TOKENS

    @staticmethod
    def _check_new_tokens(config: GenerationConfig) -> None:
        if config.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}. Fix: pass "
                              "--max-new-tokens 1 or more (GenerationConfig.max_new_tokens)")

    def _run(self, kwargs: dict[str, Any], seed: int | None) -> Any:
        import torch

        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            tensors = {key: kwargs[key].to(self.model.device) for key in ("input_ids", "attention_mask")}
            return self.model.generate(**{**kwargs, **tensors})

    def generate(
        self, prompt: str, config: GenerationConfig = GenerationConfig(), *, letters: tuple[str, ...] = (),
        on_first_token: Callable[[], None] | None = None, n: int | None = None,
    ) -> list[Sample]:
        """Greedy (config.samples == 1) or `config.samples` seeded samples (top-k/top-p) for one prompt.

        `letters` are the valid answer letters for parsing (default A-E). `on_first_token` is called
        once, when the first new token exists (for time-to-first-token). `n` overrides how many
        sequences a sampling config draws (greedy always gives one).
        """
        sampled = config.samples > 1
        n = max(1, n if n is not None else config.samples) if sampled else 1
        if self.engine is not None:
            self._check_new_tokens(config)
            with self._lock:
                rows = self.engine.generate(self.prompt_ids(prompt), config.max_new_tokens, Sampling.of(config), n,
                                            on_first_token)
            return [self.with_answer(prompt, self._sample(row, letters), letters) for row in rows]
        kwargs = self._generate_kwargs(prompt, config, sampled=sampled, n=n)
        if not sampled:
            self._one_greedy_sequence(kwargs)
        if on_first_token is not None:
            kwargs["streamer"] = _FirstTokenSignal(on_first_token)
        output = self._run(kwargs, seed=config.seed if sampled else None)
        start = 0 if self.is_encoder_decoder else kwargs["input_ids"].shape[1]
        return [self.with_answer(prompt, self._sample(row[start:].tolist(), letters), letters) for row in output]

    def _sample(self, new_ids: list[int], letters: tuple[str, ...]) -> Sample:
        if self.is_encoder_decoder and new_ids and new_ids[0] == self.model.config.decoder_start_token_id:
            new_ids = new_ids[1:]
        eos = self.eos_token_id
        length = new_ids.index(eos) + 1 if eos is not None and eos in new_ids else len(new_ids)
        text = self.decode(new_ids[:length]).strip()
        return make_sample(text, letters, tokens_out=length)

    def generate_batch(self, prompts: Sequence[str], config: GenerationConfig = GenerationConfig(), *,
                       letters: Sequence[tuple[str, ...]] = ()) -> list[Sample]:
        """Greedy answers to many prompts in one left-padded `generate` call (same prompts, same parser).

        Each row's output equals `generate(prompt)` up to float rounding of padded attention; a
        sampling config is refused (self-consistency draws per prompt with `generate`).
        """

        if config.samples > 1:
            raise ConfigError("batched generation is greedy only. Fix: use generate() per question for sampling")
        if not prompts:
            return []
        letters = list(letters) or [()] * len(prompts)
        rows = [self.prompt_ids(prompt) for prompt in prompts]
        if self.engine is not None:
            self._check_new_tokens(config)
            with self._lock:
                outputs = self.engine.generate_batch(rows, config.max_new_tokens)
            samples = [self._sample(row, tuple(valid)) for row, valid in zip(outputs, letters)]
            return [self.with_answer(p, sample, tuple(valid)) for p, sample, valid in zip(prompts, samples, letters)]
        kwargs = self._generate_kwargs(prompts[0], config, sampled=False, n=1)
        kwargs["input_ids"], kwargs["attention_mask"] = _left_padded(rows, kwargs["pad_token_id"])
        output = self._run(kwargs, seed=None)
        start = 0 if self.is_encoder_decoder else kwargs["input_ids"].shape[1]
        samples = [self._sample(row[start:].tolist(), tuple(valid)) for row, valid in zip(output, letters)]
        return [self.with_answer(prompt, sample, tuple(valid)) for prompt, sample, valid in zip(prompts, samples, letters)]

    def with_answer(self, prompt: str, sample: Sample, letters: tuple[str, ...]) -> Sample:
        """The sample with an answer: parsed from its text, else the letter the model itself finds likeliest.

        The likeliest letter is read from the model's next-token distribution after the prompt, the
        sample's rationale and "Answer:", over the valid letters only (answer_source "chosen"). With
        no letters (an open question) the sample is returned as it is.
        """
        if sample.answer is not None or self.is_encoder_decoder or not letters:
            return sample  # no letters: an open question, answered in words
        letter = self.likeliest_letter(prompt, sample.rationale, tuple(letters))
        return replace(sample, answer=letter, answer_source="chosen" if letter else "none")

    def likeliest_letter(self, prompt: str, rationale: str, letters: tuple[str, ...]) -> str | None:
        """The valid letter with the highest next-token logit after `prompt + rationale + "Answer:"`."""
        logits = self.letter_logits(prompt, rationale, letters)
        return max(logits, key=logits.get) if logits else None

    def letter_logits(self, prompt: str, rationale: str, letters: tuple[str, ...]) -> dict[str, float]:
        """Each valid letter's next-token logit after `prompt + rationale + "Answer:"` (one forward pass)."""
        import torch

        ids = self.prompt_ids(prompt) + self.text_ids(f" {rationale.strip()}\nAnswer:")
        candidates = {letter: self.text_ids(f" {letter}") for letter in letters}
        candidates = {letter: tokens[0] for letter, tokens in candidates.items() if tokens}
        if not candidates:
            return {}
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], dtype=torch.long, device=self.model.device)).logits[0, -1]
        return {letter: float(logits[token]) for letter, token in candidates.items()}

    def start_stream(self, prompt: str, config: GenerationConfig = GenerationConfig(), *,
                     letters: tuple[str, ...] = ()) -> "TextStream | EngineTextStream":
        """Start generating one sequence in a thread; iterate the returned TextStream for text chunks."""
        sampled = config.samples > 1
        if self.engine is not None:
            self._check_new_tokens(config)
            return EngineTextStream(self, self.prompt_ids(prompt), config, letters)
        kwargs = self._generate_kwargs(prompt, config, sampled=sampled, n=1)
        if not sampled:
            self._one_greedy_sequence(kwargs)
        streamer = _CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=1.0)
        kwargs["streamer"] = streamer
        return TextStream(self, kwargs, streamer, seed=config.seed if sampled else None, letters=letters)


def _left_padded(rows: Sequence[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) with every row padded on the left to the longest."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[index, width - len(row):] = 1
    return ids, mask


def make_sample(text: str, letters: tuple[str, ...], tokens_out: int) -> Sample:
    rationale, answer = parse_answer(text, letters or ("A", "B", "C", "D", "E"))
    return Sample(raw_output=text, rationale=rationale, answer=answer, tokens_out=tokens_out)


class TextStream:
    """One streamed generation: iterate for text chunks; afterwards `.sample`, `.first_token_s`, `.tokens_out`.

    Closing the iterator early (a reader that stops, e.g. a cancelled request) stops the generation
    at its next token.
    """

    def __init__(self, student: Student, kwargs: dict[str, Any], streamer: Any, seed: int | None,
                 letters: tuple[str, ...]):
        from transformers import StoppingCriteriaList

        self._student, self._streamer, self._letters = student, streamer, letters
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self.text = ""
        kwargs["stopping_criteria"] = StoppingCriteriaList([_stop_on(self._stop)])
        self._thread = threading.Thread(target=self._work, args=(kwargs, seed), daemon=True)
        self._thread.start()

    def _work(self, kwargs: dict[str, Any], seed: int | None) -> None:
        try:
            self._student._run(kwargs, seed)
        except BaseException as error:  # re-raised in the reading thread
            self._error = error
            self._streamer.end()

    def __iter__(self) -> Iterator[str]:
        try:
            while True:
                try:
                    chunk = next(self._streamer)
                except StopIteration:
                    break
                except Empty:  # nothing decoded within the timeout: keep waiting while the thread works
                    if self._thread.is_alive():
                        continue
                    break
                if chunk:
                    self.text += chunk
                    yield chunk
        finally:
            self._stop.set()  # a no-op when generation already ended
            self._thread.join()
        if self._error is not None:
            raise self._error

    @property
    def first_token_s(self) -> float | None:
        """Seconds from the start to the first new token (prompt processing included)."""
        at = self._streamer.first_token_at
        return None if at is None else at - self._started

    @property
    def tokens_out(self) -> int:
        return self._streamer.tokens_out

    @property
    def sample(self) -> Sample:
        return make_sample(self.text.strip(), self._letters, tokens_out=self.tokens_out)


class EngineTextStream:
    """TextStream's interface over a fast engine's token stream: tokens are decoded as they are read.

    No thread: the engine produces the next token when the reader asks; closing the iterator early
    stops the generation.
    """

    def __init__(self, student: Student, ids: list[int], config: GenerationConfig, letters: tuple[str, ...]):
        self._student, self._ids, self._config, self._letters = student, ids, config, letters
        self._started = time.perf_counter()
        self._first_at: float | None = None
        self._new: list[int] = []
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        student = self._student
        assert student.engine is not None
        with student._lock:
            tokens = student.engine.stream(self._ids, self._config.max_new_tokens, Sampling.of(self._config))
            try:
                for token in tokens:
                    self._first_at = self._first_at or time.perf_counter()
                    self._new.append(token)
                    if token == student.eos_token_id:
                        break
                    text = student.decode(self._new)
                    if text.endswith("\ufffd"):  # half a character: wait for the rest of its bytes
                        continue
                    chunk, self.text = text[len(self.text):], text
                    if chunk:
                        yield chunk
            finally:
                tokens.close()

    @property
    def first_token_s(self) -> float | None:
        return None if self._first_at is None else self._first_at - self._started

    @property
    def tokens_out(self) -> int:
        return len(self._new)

    @property
    def sample(self) -> Sample:
        return make_sample(self.text.strip(), self._letters, tokens_out=self.tokens_out)


class _FirstTokenSignal:
    """A streamer that only calls back once, when generate hands over its first new token."""

    def __init__(self, callback: Callable[[], None]):
        self._callback = callback
        self._puts = 0

    def put(self, value: Any) -> None:
        self._puts += 1
        if self._puts == 2:  # put #1 is the prompt (or T5's decoder start token)
            self._callback()

    def end(self) -> None:
        pass


def _counting_streamer_class() -> type:
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        """TextIteratorStreamer that also counts the generated tokens (up to and including EOS)."""

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.tokens_out = 0
            self.first_token_at: float | None = None
            self._seen_prompt = False

        def put(self, value: Any) -> None:
            if self._seen_prompt:
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                self.tokens_out += int(value.numel())
            self._seen_prompt = True
            super().put(value)

    return CountingStreamer


def _stop_on(event: threading.Event) -> Any:
    """A stopping criterion that ends generation once `event` is set."""
    import torch
    from transformers import StoppingCriteria

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopOnEvent()


def _CountingStreamer(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - built lazily to keep imports light
    return _counting_streamer_class()(*args, **kwargs)


def _check_base_there(adapter: Path, base: str) -> None:
    """Refuse an adapter whose base, recorded beside it (`../round-001/student`), is gone: the error names the
    missing folder as seen from the adapter, not a path relative to wherever the command runs, nor the shipped
    student as the fix."""
    if base.startswith(".") and not Path(base).exists():
        missing = os.path.normpath(adapter.resolve() / base)
        raise ModelNotFoundError(f"{adapter} is a LoRA adapter built on {missing} (base_model_name_or_path in its "
                                 f"{ADAPTER_CONFIG}), which is missing. Fix: restore that folder: the adapter cannot "
                                 "answer without the model it was trained on")

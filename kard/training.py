"""Fine-tune the student on KARD examples with transformers' Trainer (Seq2SeqTrainer for T5).

- the loss covers the target only: `Student.encode_example` masks the prompt to -100 for decoder-only
  models; T5 reads the prompt in its encoder and is scored on the target alone;
- full fine-tuning or LoRA (peft; merged into the weights on save, so `Student.load(dir)` needs no peft);
- sequence length fitted to the data (the longest encoded example, capped), dynamic padding per batch;
- a memory estimate before the first step: a batch that cannot fit is refused with the numbers;
- checkpoints under `DIR/checkpoints/` (`resume=True` continues from the latest), the final weights,
  the tokenizer, `kard_training.json` (config, data, losses, timings) and `losses.jsonl` in `DIR`.

The same code runs on GPUs and several devices when started with `accelerate launch -m kard train-student`.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from kard.config import StudentTrainingConfig
from kard.errors import ConfigError, DataError
from kard.prompts import PROMPT_VERSION
from kard.model_source import ADAPTER_CONFIG, record_adapter_base, save_adapter

if TYPE_CHECKING:  # pragma: no cover
    from kard.distill import StudentExample
    from kard.student import Student

log = logging.getLogger(__name__)

TRAINING_FILE = "kard_training.json"
LOSSES_FILE = "losses.jsonl"
CHECKPOINTS = "checkpoints"
NO_LENGTH_LIMIT = 1_000_000
GB = 1024**3


class OutOfMemoryRisk(ConfigError):
    """The estimated memory of one training step exceeds what this machine has free."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training step needs, by part (weights, gradients + optimizer, activations)."""

    weights: int
    gradients_and_optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return int((self.weights + self.gradients_and_optimizer + self.activations) * 1.15)  # allocator slack

    def describe(self) -> str:
        return (f"about {self.total / GB:.1f} GB (weights {self.weights / GB:.1f}, gradients and optimizer "
                f"{self.gradients_and_optimizer / GB:.1f}, activations {self.activations / GB:.1f}, plus 15% slack)")


@dataclass(frozen=True)
class StudentTrainingResult:
    output_dir: str
    steps: int
    examples: int
    max_length: int
    truncated: int
    losses: list[dict] = field(default_factory=list)
    seconds_per_step: float = 0.0
    peak_rss_mb: float = 0.0
    memory_estimate_gb: float = 0.0
    eval_loss: float | None = None


# ---------------------------------------------------------------- data


def encode_examples(student: "Student", examples: Sequence["StudentExample"], config: StudentTrainingConfig
                    ) -> tuple[list[dict], int, int]:
    """(encoded examples, max_length used, how many were cut). Length fitted to the data unless set."""
    if not examples:
        raise DataError("no training examples", fix="build them with `python -m kard build-examples`")
    full = [student.encode_example(e.input, e.target, NO_LENGTH_LIMIT) for e in examples]
    lengths = [_length(student, item) for item in full]
    limit = config.max_length or min(config.max_length_cap, max(lengths))
    context = student.context_length
    if context and limit > context:
        log.info("max_length %d exceeds the model's context %d: using %d", limit, context, context)
        limit = context
    cut = sum(1 for n in lengths if n > limit)
    encoded = [item if _length(student, item) <= limit else student.encode_example(e.input, e.target, limit)
               for item, e in zip(full, examples)]
    if cut:
        log.warning("%d of %d examples are longer than %d tokens and were cut", cut, len(examples), limit)
    _check_targets(encoded, examples)
    return encoded, limit, cut


def _length(student: "Student", item: dict) -> int:
    """Longest side of one example: the whole sequence (decoder-only) or max(input, labels) for T5."""
    if student.is_encoder_decoder:
        return max(len(item["input_ids"]), len(item["labels"]))
    return len(item["input_ids"])


def _check_targets(encoded: list[dict], examples: Sequence["StudentExample"]) -> None:
    empty = [e.id for item, e in zip(encoded, examples) if not any(label != -100 for label in item["labels"])]
    if empty:
        raise DataError(f"{len(empty)} example(s) have no target tokens left ({', '.join(empty[:5])})",
                        fix="give every example a non-empty target, or raise --max-length")


# ---------------------------------------------------------------- memory


def estimate_memory(model: Any, batch_size: int, seq_len: int, config: StudentTrainingConfig) -> MemoryEstimate:
    """A rough, slightly conservative estimate of one training step's peak memory.

    Weights 4 bytes/param (2 in bf16); full fine-tuning adds fp32 gradients (4) and AdamW's two moments
    (8); LoRA adds those for its adapters only. Activations kept for backward, per token and layer:
    about 8h + 4i fp32 values (h hidden size, i MLP width: norms, q/k/v, attention output, the gated
    MLP's four i-wide tensors), only ~2h with gradient checkpointing; the vocabulary logits add 4 x V
    values per token (logits, their fp32 copy, log-softmax, the gradient). Checked against SmolLM2-135M,
    batch 8 x 640 tokens: 13.7 GiB estimated, 14 GB measured on this kind of CPU (shared/DESIGN.md).
    """
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    hidden = _first(cfg, ("hidden_size", "d_model", "n_embd"), 512)
    inter = _first(cfg, ("intermediate_size", "d_ff", "n_inner"), 4 * hidden) or 4 * hidden
    layers = _first(cfg, ("num_hidden_layers", "num_layers", "n_layer"), 12)
    if getattr(cfg, "is_encoder_decoder", False):
        layers += _first(cfg, ("num_decoder_layers",), layers)
    vocab = _first(cfg, ("vocab_size",), 32000)
    weight_bytes = 2 if config.bf16 else 4
    trainable = _lora_params(hidden, layers, config.lora_r) if config.lora else params
    per_layer = 2 * hidden if config.gradient_checkpointing else 8 * hidden + 4 * inter
    tokens = batch_size * seq_len
    activations = 4 * tokens * (layers * per_layer + 4 * vocab)
    return MemoryEstimate(weights=params * weight_bytes, gradients_and_optimizer=trainable * 12,
                          activations=activations)


def _first(cfg: Any, names: Sequence[str], default: int) -> int:
    for name in names:
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def _lora_params(hidden: int, layers: int, rank: int) -> int:
    return layers * 7 * 2 * hidden * rank  # up to 7 linear layers per block, A and B of rank r


def available_memory() -> int:
    """Bytes free for training: GPU memory on a CUDA machine, else the RAM psutil reports available."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(model: Any, batch_size: int, seq_len: int, config: StudentTrainingConfig,
                 available: int | None = None) -> MemoryEstimate:
    """Raise OutOfMemoryRisk, with the numbers and a batch size that fits, when the step cannot fit."""
    estimate = estimate_memory(model, batch_size, seq_len, config)
    free = available_memory() if available is None else available
    need = estimate.total - estimate.weights  # the weights are loaded already
    if need <= free:
        return estimate
    per_row = estimate.activations / batch_size  # activations grow linearly with the batch
    room = (free + estimate.weights) / 1.15 - estimate.weights - estimate.gradients_and_optimizer
    fits = max(0, min(batch_size - 1, int(room // per_row)))
    accum = -(-batch_size * config.grad_accum // fits) if fits else 0
    advice = (f"--batch-size {fits} --grad-accum {accum} (an effective batch of {fits * accum}, was "
              f"{batch_size * config.grad_accum})" if fits else "even batch size 1 does not fit: use --lora, "
              "--gradient-checkpointing or a shorter --max-length")
    raise OutOfMemoryRisk(
        f"a training batch of {batch_size} x {seq_len} tokens needs {estimate.describe()}, but only "
        f"{free / GB:.1f} GB of memory is free beyond the loaded weights. Fix: {advice} "
        "(or pass --no-memory-check to try anyway)"
    )


# ---------------------------------------------------------------- training


def train_student(student: "Student | str", examples: Sequence["StudentExample"], output_dir: str | Path,
                  config: StudentTrainingConfig = StudentTrainingConfig(), *,
                  eval_examples: Sequence["StudentExample"] | None = None, callbacks: Sequence[Any] = (),
                  resume: bool = False, progress: bool = True) -> StudentTrainingResult:
    """Fine-tune `student` (a Student or a name/path for Student.load) and save it to `output_dir`."""
    from kard.student import Student

    _check_config(config)
    config = _without_emulated_bf16(config)
    if isinstance(student, (str, Path)):
        student = Student.load(str(student))
    base_spec = student.location
    output_dir = Path(output_dir)
    checkpoints = output_dir / CHECKPOINTS
    if resume and not _latest_checkpoint(checkpoints):
        log.warning("no checkpoint in %s to resume from: training from the start", output_dir)
    encoded, max_length, cut = encode_examples(student, examples, config)
    estimate = estimate_memory(student.model, config.batch_size, max_length, config)
    if config.check_memory:
        check_memory(student.model, config.batch_size, max_length, config)
    log.info("training on %d examples, max_length %d, memory estimate %s", len(encoded), max_length, estimate.describe())
    log.info("%s", describe_budget(config, len(encoded)))
    model = _prepare_model(student, config)
    timer = _step_timer()
    recorders = [_checkpoint_base_recorder(config.base_student or base_spec)] if config.lora else []
    trainer = _trainer(student, model, encoded, output_dir, config, eval_examples, max_length,
                       [timer, *recorders, *callbacks], progress)
    padding_side = student.tokenizer.padding_side
    student.tokenizer.padding_side = "right"  # positions must start at 0 for every training row
    try:
        trainer.train(resume_from_checkpoint=True if resume and _latest_checkpoint(checkpoints) else None)
        eval_loss = trainer.evaluate()["eval_loss"] if eval_examples else None
    finally:
        student.tokenizer.padding_side = padding_side
    student.model = _finished_model(trainer.model, config).eval()
    losses = [{"step": row["step"], "loss": row["loss"]} for row in trainer.state.log_history if "loss" in row]
    result = StudentTrainingResult(
        output_dir=str(output_dir), steps=trainer.state.global_step, examples=len(encoded), max_length=max_length,
        truncated=cut, losses=losses, seconds_per_step=timer.mean(), peak_rss_mb=round(peak_rss_mb(), 1),
        memory_estimate_gb=round(estimate.total / GB, 2), eval_loss=eval_loss,
    )
    adapter_base = (config.base_student or base_spec) if config.lora and not config.merge_lora else None
    _save(student, result, config, examples, output_dir, adapter_base)
    return result


def optimizer_steps(config: StudentTrainingConfig, examples: int, devices: int = 1) -> int:
    """Optimizer steps a run will take: max_steps, or epochs over batches of batch x accumulation x devices."""
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, -(-examples // (config.batch_size * devices)) // config.grad_accum)
    return max(1, int(per_epoch * config.epochs))


def describe_budget(config: StudentTrainingConfig, examples: int) -> str:
    """One line stated before training: effective batch, optimizer steps and epochs that implies."""
    effective = config.batch_size * config.grad_accum
    steps = optimizer_steps(config, examples)
    return (f"effective batch {effective} ({config.batch_size} x {config.grad_accum} accumulation), "
            f"{steps} optimizer steps = {steps * effective / max(1, examples):.2f} epochs of {examples} examples")


def _check_config(config: StudentTrainingConfig) -> None:
    if config.batch_size < 1 or config.grad_accum < 1:
        raise ConfigError(f"batch size and gradient accumulation must be at least 1 "
                          f"(got {config.batch_size}, {config.grad_accum}). Fix: pass positive values")
    if config.max_steps <= 0 and config.epochs <= 0:
        raise ConfigError("nothing to train: max_steps and epochs are both 0. Fix: pass --steps or --epochs")
    if config.learning_rate <= 0:
        raise ConfigError(f"learning rate must be positive, got {config.learning_rate}")
    if config.keep_checkpoints < 1:
        raise ConfigError(f"keep_checkpoints must be at least 1 (the newest is needed to resume), "
                          f"got {config.keep_checkpoints}. Fix: pass --keep-checkpoints 1 or more")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16); elsewhere PyTorch emulates it."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    known = [check for check in checks if check is not None]
    return not known or any(check() for check in known)  # a PyTorch without the checks: trust the caller


def _without_emulated_bf16(config: StudentTrainingConfig) -> StudentTrainingConfig:
    """float32 where bf16 was asked for on a CPU that would emulate it (a step took 9 minutes instead of
    seconds on an AVX2-only AMD EPYC), with a warning; the saved training record says float32."""
    import torch

    if not config.bf16 or torch.cuda.is_available() or cpu_has_bf16():
        return config
    log.warning("bf16 was asked for, but this CPU has neither AMX nor AVX512-BF16 (PyTorch's CPU capability: %s), "
                "so bf16 would be emulated and many times slower: training in float32. Fix: drop --bf16 on this "
                "machine", torch.backends.cpu.get_cpu_capability())
    return replace(config, bf16=False)


def _prepare_model(student: "Student", config: StudentTrainingConfig):
    model = student.model
    model.train()
    if not config.lora:  # full fine-tuning trains every weight; a student merged from an adapter arrives frozen
        model.requires_grad_(True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if not config.lora:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    task = TaskType.SEQ_2_SEQ_LM if student.is_encoder_decoder else TaskType.CAUSAL_LM
    lora = LoraConfig(task_type=task, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear")
    model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def _trainer(student, model, encoded, output_dir, config, eval_examples, max_length, callbacks, progress):
    import torch
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments

    tokenizer = student.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    arguments = dict(
        output_dir=str(output_dir / CHECKPOINTS), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_ratio, weight_decay=config.weight_decay, logging_steps=config.logging_steps,
        save_steps=config.save_steps, save_total_limit=config.keep_checkpoints, seed=config.seed, report_to="none",
        remove_unused_columns=False, disable_tqdm=not progress, dataloader_num_workers=0,
        dataloader_pin_memory=False, bf16=config.bf16 and torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(),
        lr_scheduler_type="linear", train_sampling_strategy="group_by_length",  # less padding per batch
    )
    is_t5 = student.is_encoder_decoder
    args = Seq2SeqTrainingArguments(**arguments) if is_t5 else TrainingArguments(**arguments)
    evaluation = None
    if eval_examples:
        evaluation = _Rows(encode_examples(student, eval_examples, _fixed_length(config, max_length))[0])
    trainer_class = Seq2SeqTrainer if is_t5 else Trainer
    if config.bf16 and not torch.cuda.is_available():
        trainer_class = _with_cpu_autocast(trainer_class)
    trainer = trainer_class(
        model=model, args=args, train_dataset=_Rows(encoded), eval_dataset=evaluation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model if is_t5 else None, label_pad_token_id=-100,
                                             padding=True),
        processing_class=tokenizer, callbacks=list(callbacks),
    )
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # quiet: the caller reads losses from the result
    return trainer


def _with_cpu_autocast(trainer_class):
    """The Trainer with its loss computed under CPU bf16 autocast (AMX matmuls; the Trainer's own bf16
    flag left the CPU step within 10% of float32 here, this is 2x faster)."""
    import torch

    class CpuAutocastTrainer(trainer_class):
        def compute_loss(self, *args, **kwargs):  # noqa: ANN002, ANN003
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return super().compute_loss(*args, **kwargs)

    return CpuAutocastTrainer


def _fixed_length(config: StudentTrainingConfig, max_length: int) -> StudentTrainingConfig:
    return replace(config, max_length=max_length)


class _Rows:
    """A list of encoded examples as a map-style dataset."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock seconds of each optimizer step (all its accumulated micro-batches)."""

        def __init__(self):
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.seconds.append(time.perf_counter() - self._start)

        def mean(self) -> float:
            return round(sum(self.seconds) / len(self.seconds), 3) if self.seconds else 0.0

    return StepTimer()


def _checkpoint_base_recorder(base: str):
    """A callback pointing each saved checkpoint's adapter at `base`, as the final adapter is (peft records
    the loaded model's folder: for a student continued from an adapter, the plain base without that adapter)."""
    from transformers import TrainerCallback

    class CheckpointBase(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and (checkpoint / ADAPTER_CONFIG).is_file():
                record_adapter_base(checkpoint, base)

    return CheckpointBase()


def _finished_model(model, config: StudentTrainingConfig):
    if config.lora and config.merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if config.gradient_checkpointing and hasattr(model, "gradient_checkpointing_disable"):
        model.gradient_checkpointing_disable()
        model.config.use_cache = True
    return model


def checkpoints_by_step(folder: Path) -> list[Path]:
    """The Trainer's `checkpoint-<step>` folders under `folder`, oldest first."""
    kept = [p for p in folder.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(kept, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def _latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints_by_step(folder)
    return found[-1] if found else None


def _save(student: "Student", result: StudentTrainingResult, config: StudentTrainingConfig,
          examples: Sequence["StudentExample"], output_dir: Path, adapter_base: str | None) -> None:
    """The trained student (or, given `adapter_base`, its LoRA adapter pointed at that base), its tokenizer,
    the training record and the losses."""
    import transformers

    if adapter_base is None:
        student.save(output_dir)
    else:
        save_adapter(student.model, output_dir, adapter_base)
        student.tokenizer.save_pretrained(output_dir)
    methods = sorted({e.method for e in examples})
    sources = sorted({e.source for e in examples})
    record = {
        "student": student.name, "prompt_version": PROMPT_VERSION, "config": asdict(config),
        "data": {"examples": len(examples), "methods": methods, "sources": sources,
                 "max_length": result.max_length, "truncated": result.truncated},
        "result": {k: v for k, v in asdict(result).items() if k != "losses"},
        "lora_merged": bool(config.lora and config.merge_lora), "transformers": transformers.__version__,
    }
    (output_dir / TRAINING_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    with (output_dir / LOSSES_FILE).open("w", encoding="utf-8") as out:
        for row in result.losses:
            out.write(json.dumps(row) + "\n")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

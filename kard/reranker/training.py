"""KARD reranker training: teach a (question, passage) scorer to rank like BM25-given-the-rationale.

At inference only the question is known, but during training the teacher's rationale says which
passages matter. The recipe (paper, section 3.2 and its code):

- candidates per (question, rationale): BM25 top-32 retrieved with the rationale + top-32 with the
  question (deduplicated; a passage in both lists counts as a rationale candidate);
- target of each candidate: its BM25 score against the rationale. A question candidate missing from
  the rationale's top-32 is scored by a deeper rationale search (`score_depth`, default 1000): its
  exact BM25 score when it is within that depth, 0 when the rationale shares no term with it (BM25
  drops zero scores), and otherwise the lowest score seen at that depth (an upper bound, still far
  below the top candidates, so its target probability stays near zero);
- a curator's passage marks (corrections from the app) override those targets: a passage marked
  relevant becomes a rationale candidate with the top target, one marked irrelevant a question
  candidate with target 0 (`apply_marks`);
- per step and question, 4 candidates sampled from each list;
- loss = KL( softmax(bm25 / tau1) || softmax(score / tau2) ), tau1 annealed 5 -> 1 as the paper's code;
  tau2 annealed 2 -> 1 because a cross-encoder logit (or a MaxSim sum of cosines) lives on a scale of
  units, where the paper's 500 -> 100 fits its unnormalised 768-d dot products.
"""

from __future__ import annotations

import json
import logging
import random
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from kard.annotations import RELEVANCE_MARKS
from kard.config import RerankerTrainingConfig
from kard.errors import ConfigError, DataError
from kard.prompts import strip_answer_line
from kard.records import Question
from kard.reranker.encoder import Reranker, reranker_query

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from kard.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

RELEVANT, IRRELEVANT = RELEVANCE_MARKS  # a curator's passage marks (PassageRecord.mark)
MASKED = -1e4
"""Logit given to padding slots: finite (so 0 * log 0 stays 0, no NaN) and far below any real score."""


@dataclass(frozen=True)
class RerankerItem:
    """Training candidates of one (question, rationale) pair and their BM25-against-rationale targets."""

    question_id: str
    query: str
    rationale_ids: tuple[str, ...]
    question_ids: tuple[str, ...]
    targets: Mapping[str, float]


@dataclass(frozen=True)
class RerankerTrainingResult:
    output_dir: str
    steps: int
    losses: list[float]
    seconds_per_step: float
    peak_rss_mb: float
    config: dict = field(default_factory=dict)


def kard_kl_loss(bm25: "torch.Tensor", scores: "torch.Tensor", tau1: float, tau2: float,
                 mask: "torch.Tensor | None" = None) -> "torch.Tensor":
    """Mean over rows of KL( softmax(bm25/tau1) || softmax(scores/tau2) ); `mask` marks real candidates."""
    import torch

    if tau1 <= 0 or tau2 <= 0:
        raise ConfigError(f"temperatures must be positive, got tau1={tau1}, tau2={tau2}")
    target_logits = bm25 / tau1
    model_logits = scores / tau2
    if mask is not None:
        target_logits = target_logits.masked_fill(~mask, MASKED)
        model_logits = model_logits.masked_fill(~mask, MASKED)
    log_p = torch.log_softmax(target_logits, dim=-1)
    log_q = torch.log_softmax(model_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def temperature(step: int, steps: int, start: float, end: float) -> float:
    """Linear annealing from `start` at step 0 to `end` at the last step."""
    if steps <= 1:
        return end
    return start + (end - start) * min(step, steps - 1) / (steps - 1)


def build_reranker_items(pairs: Sequence[tuple[Question, str]], knowledge: "KnowledgeBase", *,
                         candidates: int = 32, score_depth: int = 1000,
                         marks: Sequence[Mapping[str, str]] | None = None) -> list[RerankerItem]:
    """Candidates and targets for each (question, rationale text) pair (module docstring); `marks`, one
    {passage id: "relevant" | "irrelevant"} per pair, are a curator's and override the targets."""
    if candidates < 1:
        raise ConfigError(f"candidates must be at least 1, got {candidates}")
    marks = list(marks) if marks is not None else [{}] * len(pairs)
    if len(marks) != len(pairs):
        raise ConfigError(f"{len(marks)} sets of passage marks for {len(pairs)} pairs: give one per pair")
    usable = [(q, strip_answer_line(r), m) for (q, r), m in zip(pairs, marks) if r and strip_answer_line(r)]
    if not usable:
        raise DataError("no (question, rationale) pairs to train the reranker on",
                        fix="pass questions with rationales (the same ones build-examples uses)")
    depth = max(candidates, min(score_depth, len(knowledge)))
    by_rationale = knowledge.search_many([r for _, r, _ in usable], depth)
    by_question = knowledge.search_many([reranker_query(q) for q, _, _ in usable], candidates)
    items: list[RerankerItem] = []
    for (question, _, marked), deep, question_hits in zip(usable, by_rationale, by_question):
        if not deep:
            continue
        scores = {hit.passage.id: hit.bm25_score for hit in deep}
        floor = deep[-1].bm25_score if len(deep) >= depth else 0.0
        rationale_ids = tuple(hit.passage.id for hit in deep[:candidates])
        question_ids = tuple(h.passage.id for h in question_hits if h.passage.id not in set(rationale_ids))
        targets = {pid: scores.get(pid, floor) for pid in rationale_ids + question_ids}
        item = RerankerItem(question.id, reranker_query(question), rationale_ids, question_ids, targets)
        items.append(apply_marks(item, {pid: mark for pid, mark in marked.items() if pid in knowledge}))
    if not items:
        raise DataError("the knowledge base returned no passage for any rationale",
                        fix="use a knowledge base that covers the questions' topics")
    log.info("reranker items: %d (from %d pairs)", len(items), len(usable))
    return items


def apply_marks(item: RerankerItem, marks: Mapping[str, str]) -> RerankerItem:
    """A curator's marks over BM25's targets: "relevant" -> a rationale candidate with the item's top
    target, "irrelevant" -> a question candidate with target 0 (no term shared with the rationale)."""
    if not marks:
        return item
    targets, top = dict(item.targets), max(item.targets.values(), default=1.0)
    rationale_ids, question_ids = list(item.rationale_ids), list(item.question_ids)
    for pid, mark in marks.items():
        if mark not in (RELEVANT, IRRELEVANT):
            continue
        targets[pid] = top if mark == RELEVANT else 0.0
        keep, drop = (rationale_ids, question_ids) if mark == RELEVANT else (question_ids, rationale_ids)
        if pid in drop:
            drop.remove(pid)
        if pid not in keep:
            keep.append(pid)
    return replace(item, rationale_ids=tuple(rationale_ids), question_ids=tuple(question_ids), targets=targets)


def sample_candidates(item: RerankerItem, per_source: int, rng: random.Random) -> list[str]:
    """`per_source` from the rationale list and `per_source` from the question list (topped up from the other)."""
    from_rationale = rng.sample(item.rationale_ids, min(per_source, len(item.rationale_ids)))
    from_question = rng.sample(item.question_ids, min(per_source, len(item.question_ids)))
    chosen = from_rationale + from_question
    spare = [pid for pid in item.rationale_ids + item.question_ids if pid not in set(chosen)]
    rng.shuffle(spare)
    chosen += spare[: max(0, 2 * per_source - len(chosen))]
    return chosen


def train_reranker(reranker: Reranker, items: Sequence[RerankerItem], knowledge: "KnowledgeBase",
                   output_dir: str | Path, config: RerankerTrainingConfig = RerankerTrainingConfig(),
                   *, progress: bool = True) -> RerankerTrainingResult:
    """Train in place, save to `output_dir` (with losses.jsonl and the config), return the curve."""
    import torch

    if not items:
        raise DataError("no reranker training items", fix="build them with build_reranker_items")
    if config.steps < 1 or config.batch_size < 1 or config.per_source < 1:
        raise ConfigError("steps, batch_size and per_source must be at least 1")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    module = _trainable(reranker, config)
    reranker.trained = True  # checkpoints saved from here on hold a (partly) trained head
    optimizer, scheduler = _optimizer(module, config)
    losses: list[float] = []
    started = time.perf_counter()
    log_file = (output_dir / "losses.jsonl").open("w", encoding="utf-8")
    bar = _progress(config.steps, progress)
    batches = _batches(len(items), config.batch_size, rng)
    for step in range(config.steps):
        batch = [items[i] for i in next(batches)]
        tau1 = temperature(step, config.steps, config.tau1_start, config.tau1_end)
        tau2 = temperature(step, config.steps, config.tau2_start, config.tau2_end)
        step_start = time.perf_counter()
        loss, final_t = _step_loss(reranker, batch, knowledge, config.per_source, rng, tau1, tau2,
                                   (config.tau1_end, config.tau2_end))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        log_file.write(json.dumps({"step": step + 1, "loss": losses[-1], "loss_final_t": final_t, "tau1": tau1, "tau2": tau2,
                                   "seconds": round(time.perf_counter() - step_start, 3)}) + "\n")
        log_file.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if config.save_steps and (step + 1) % config.save_steps == 0 and step + 1 < config.steps:
            _save(reranker, module, output_dir / f"checkpoint-{step + 1}", config, losses, step + 1)
    bar.close()
    log_file.close()
    seconds = (time.perf_counter() - started) / config.steps
    reranker.module = _merged(module)
    reranker.module.eval()
    info = _info(config, losses, config.steps, seconds)
    reranker.save(output_dir, training=info)
    return RerankerTrainingResult(str(output_dir), config.steps, losses, seconds, info["peak_rss_mb"], asdict(config))


def _batches(count: int, size: int, rng: random.Random):
    """Endless batches of indices: each epoch a fresh shuffle, every item seen once per epoch."""
    pending: list[int] = []
    while True:
        while len(pending) < size:
            epoch = list(range(count))
            rng.shuffle(epoch)
            pending.extend(epoch)
        yield pending[:size]
        pending = pending[size:]


def _step_loss(reranker, batch, knowledge, per_source, rng, tau1, tau2, final=None):
    """(loss at this step's temperatures, the same batch's loss at the final temperatures or None).

    The annealed loss rises as tau1 sharpens the target; the loss at fixed final temperatures is the
    curve that shows learning.
    """
    scores, bm25, mask = _batch_scores(reranker, batch, knowledge, per_source, rng)
    loss = kard_kl_loss(bm25, scores, tau1, tau2, mask)
    fixed = None
    if final is not None:
        fixed = float(kard_kl_loss(bm25, scores.detach(), final[0], final[1], mask))
    return loss, fixed


def mean_kl(reranker: Reranker, items: Sequence[RerankerItem], knowledge: "KnowledgeBase", *, tau1: float = 1.0,
            tau2: float = 1.0, per_source: int = 4, seed: int = 0, batch_size: int = 4) -> float:
    """Mean KARD KL of `reranker` over `items` (fixed seeded candidates), without training: held-out loss."""
    import torch

    rng = random.Random(seed)
    total = 0.0
    was_training = reranker.module.training
    reranker.module.eval()
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            batch = list(items[start : start + batch_size])
            scores, bm25, mask = _batch_scores(reranker, batch, knowledge, per_source, rng)
            total += float(kard_kl_loss(bm25, scores, tau1, tau2, mask)) * len(batch)
    reranker.module.train(was_training)
    return total / len(items)


def _batch_scores(reranker, batch, knowledge, per_source, rng):
    import torch

    chosen = [sample_candidates(item, per_source, rng) for item in batch]
    width = max(len(ids) for ids in chosen)
    queries = [item.query for item, ids in zip(batch, chosen) for _ in ids]
    texts = [knowledge.get(pid).as_knowledge() for ids in chosen for pid in ids]
    flat = reranker.score(queries, texts)
    scores = torch.full((len(batch), width), 0.0, dtype=flat.dtype, device=flat.device)
    bm25 = torch.zeros((len(batch), width), dtype=torch.float32, device=flat.device)
    mask = torch.zeros((len(batch), width), dtype=torch.bool, device=flat.device)
    offset = 0
    for row, (item, ids) in enumerate(zip(batch, chosen)):
        scores[row, : len(ids)] = flat[offset : offset + len(ids)]
        bm25[row, : len(ids)] = torch.tensor([item.targets[pid] for pid in ids])
        mask[row, : len(ids)] = True
        offset += len(ids)
    return scores.float(), bm25, mask


def _trainable(reranker: Reranker, config: RerankerTrainingConfig):
    reranker.module.train()
    if not config.lora:
        return reranker.module
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:  # pragma: no cover - peft is a requirement
        from kard.errors import MissingDependencyError

        raise MissingDependencyError("peft", "LoRA training") from error
    if reranker.kind == "maxsim":
        lora = LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules=["query", "value"])
        reranker.module.encoder = get_peft_model(reranker.module.encoder, lora)
        return reranker.module
    lora = LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules=["query", "value"],
                      task_type="SEQ_CLS")
    reranker.module = get_peft_model(reranker.module, lora)
    return reranker.module


def _merged(module):
    if hasattr(module, "merge_and_unload"):
        return module.merge_and_unload()
    encoder = getattr(module, "encoder", None)
    if encoder is not None and hasattr(encoder, "merge_and_unload"):
        module.encoder = encoder.merge_and_unload()
    return module


def _optimizer(module, config: RerankerTrainingConfig):
    import torch
    from transformers import get_linear_schedule_with_warmup

    head, body = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (head if _is_head(name) else body).append(param)
    groups = [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
    warmup = min(config.warmup_steps, max(0, config.steps - 1))
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, config.steps)


def _is_head(name: str) -> bool:
    """The freshly initialised scoring layers: the cross-encoder classifier and the MaxSim projection."""
    return any(part in ("classifier", "project") for part in name.split("."))


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="reranker", disable=not enabled)


def _info(config: RerankerTrainingConfig, losses: list[float], steps: int, seconds: float) -> dict:
    return {
        "config": asdict(config),
        "steps": steps,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds_per_step": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _save(reranker: Reranker, module, directory: Path, config, losses, steps) -> None:
    """An intermediate checkpoint (LoRA adapters stay unmerged in memory; the saved copy is merged)."""
    if module is reranker.module and not hasattr(module, "merge_and_unload"):
        reranker.save(directory, training=_info(config, losses, steps, 0.0))
        return
    log.info("skipping intermediate checkpoint at step %d for a LoRA run (the final model is merged)", steps)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

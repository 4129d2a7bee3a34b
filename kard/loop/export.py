"""Curated corrections -> KARD training examples (JSONL + a Hugging Face `datasets` folder).

    export_corrections(AnnotationStore(db), out_dir) -> ExportResult

Only the **latest revision** of each item counts (a revert is a new revision, so it counts too).
Each kept item becomes one `kard.distill.StudentExample` in exactly the format the training commands
read (`kard.distill.read_examples`), plus provenance fields that `read_examples` ignores and the
Hugging Face dataset keeps: `item_id`, `curator`, `revision`, `created_at`, `original_source` (whose
rationale the curator corrected: "teacher:<model>", "recorded:<source>", "student <model>"),
`teacher_model`, `student_model`, `rating`, `tags`, `dropped_passage_ids`.

The example reads the question, its options and the knowledge, and learns to write the *corrected*
rationale and answer, in the prompt of the question's kind (`Correction.kind`, kard.kinds): a
multiple-choice or yes/no question (options A. yes, B. no) lists its options and ends "Answer: <letter>";
an open question has the open prompt (no options) and the target "<rationale>\nAnswer: <answer text>".
The answer is stated once: a rationale ending "... Answer: C" (the chosen answer) loses it (`strip_answer`).
Its knowledge (`knowledge_from`):
- "store" (default, needs no index): the passages the student read when the curator saw it, plus
  candidates the curator marked relevant, minus every passage marked irrelevant;
- "kb": the KARD recipe, BM25 over a knowledge base with the corrected rationale as the query
  (top-n, the dataset's default), minus the passages marked irrelevant; passages marked relevant go first.

Exclusion rule (`exclusion_reason`; each excluded item is listed with its reason in `export.json`):
1. **rejected**: the note starts with "reject" (e.g. "reject: the gold label is wrong");
2. **low-rated and not corrected**: the rating is <= `low_rating` (2) and the saved rationale is the
   student's own, unchanged. The app's rating rates the student's rationale, so a low rating with
   another rationale saved (edited, or the teacher's the editor started from) is exactly a useful
   correction and is kept; a low rating on the student's own words means "bad, not fixed" and is
   dropped. `min_rating` (off by default) drops every item rated below it, edited or not, for stores
   whose curators rate their own correction;
3. **contradicts gold**: the corrected answer differs from the question's gold answer (off with
   `keep_gold_mismatch`: the paper keeps only rationales that reach the gold answer);
4. **inconsistent**: the rationale itself concludes a different answer than the chosen one, read exactly
   as the app's save reads it (`kard.prompts.concluded_answer`: "the answer is <option text>", "Answer: C"
   on its own line or inline, "option C", a last yes/no; for an open question its "Answer: ..." or
   "the answer is ..." text, compared as words), saved with "save anyway": training on it would teach a
   contradiction.

Output order is deterministic: by item id. Re-exporting an unchanged store gives identical files.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from kard.annotations import AnnotationStore, Correction, PassageRecord, Revision
from kard.distill import StudentExample, default_top_n
from kard.errors import ConfigError, DataError
from kard.prompts import concluded_answer, same_answer, strip_answer_line, student_input, student_target
from kard.records import Passage, Question, is_recalled

if TYPE_CHECKING:  # pragma: no cover
    from kard.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

EXAMPLES_FILE = "corrections.jsonl"
DATASET_DIR = "hf_dataset"
MANIFEST_FILE = "export.json"
KNOWLEDGE_FROM = ("store", "kb")
_REJECT = re.compile(r"^\s*\[?\s*reject", re.IGNORECASE)


@dataclass(frozen=True)
class ExportConfig:
    """Which corrections become training examples, and where their knowledge comes from."""

    low_rating: int = 2  # unedited items rated <= this are "bad, not fixed" and excluded
    min_rating: int | None = None  # None: off; else drop every item rated below it, edited or not
    keep_gold_mismatch: bool = False  # the paper trains only on rationales that reach the gold answer
    keep_inconsistent: bool = False  # a rationale concluding another letter teaches a contradiction
    knowledge_from: str = "store"  # "store": passages the curator saw (no index needed); "kb": KARD retrieval
    top_n: int | None = None  # passages per example with knowledge_from="kb"; None = dataset default (paper)


@dataclass(frozen=True)
class CuratedExample:
    """A training example built from one correction, with where it came from."""

    example: StudentExample
    item_id: str
    curator: str
    revision: int
    created_at: str
    original_source: str
    teacher_model: str | None
    student_model: str
    rating: int | None
    tags: tuple[str, ...]
    dropped_passage_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        data = self.example.to_dict()
        data.update(item_id=self.item_id, curator=self.curator, revision=self.revision, created_at=self.created_at,
                    original_source=self.original_source, teacher_model=self.teacher_model,
                    student_model=self.student_model, rating=self.rating, tags=list(self.tags),
                    dropped_passage_ids=list(self.dropped_passage_ids))
        return data


@dataclass(frozen=True)
class Exclusion:
    item_id: str
    revision: int
    reason: str


@dataclass(frozen=True)
class ExportResult:
    examples: tuple[CuratedExample, ...]
    excluded: tuple[Exclusion, ...]
    examples_path: Path | None = None
    dataset_path: Path | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def student_examples(self) -> list[StudentExample]:
        return [c.example for c in self.examples]


def _normalise(text: str) -> str:
    return " ".join(strip_answer_line(text or "").split())


def is_rejected(c: Correction) -> bool:
    """The curator rejected the item (its note starts with "reject"): it trains nothing."""
    return bool(_REJECT.match(c.note or ""))


def marks_passages(c: Correction) -> bool:
    """The curator marked passages: the marks train the reranker even when the item is kept from the
    student's training (say, rated low with the rationale unchanged), unless it was rejected."""
    return bool(c.relevance) and not is_rejected(c)


def exclusion_reason(revision: Revision, config: ExportConfig = ExportConfig()) -> str | None:
    """Why the item's latest revision is not exported, or None when it is (module docstring)."""
    c = revision.correction
    if is_rejected(c):
        return "rejected (note starts with 'reject')"
    rated = c.student_rationale or c.original_rationale  # what the rating rates: the student's rationale
    edited = _normalise(c.rationale) != _normalise(rated)
    if c.rating is not None and c.rating <= config.low_rating and not edited:
        return f"rated {c.rating} (<= {config.low_rating}) and the rationale was not corrected"
    if config.min_rating is not None and (c.rating is None or c.rating < config.min_rating):
        return f"rating {c.rating} below min_rating {config.min_rating}"
    if not config.keep_gold_mismatch and c.gold_answer and not same_answer(c.answer, c.gold_answer, c.kind):
        return f"corrected answer {c.answer} differs from the gold answer {c.gold_answer}"
    if not config.keep_inconsistent:
        return contradiction(c)
    return None


def contradiction(c: Correction) -> str | None:
    """Why the rationale contradicts the chosen answer, by the check the app's save asks "save anyway" on
    (`concluded_answer`, `same_answer`); None when it concludes the chosen answer or states none."""
    stated = concluded_answer(c.rationale, c.to_question())
    if stated is None or same_answer(stated, c.answer, c.kind):
        return None
    return f"the rationale concludes {stated} but the chosen answer is {c.answer}"


def _question(revision: Revision) -> Question:
    """The question as it was asked (kind and options), the corrected answer as gold."""
    return revision.correction.to_question()


def _passage(record: PassageRecord) -> Passage:
    return record.to_hit().passage


def knowledge_from_store(revision: Revision) -> tuple[list[Passage], list[str]]:
    """(passages the student read + those marked relevant, minus irrelevant ones; ids dropped as irrelevant)."""
    records = [p for p in revision.correction.passages if not is_recalled(p.id)]  # a saved correction is no knowledge
    dropped = [p.id for p in records if p.mark == "irrelevant"]
    kept = [p for p in records if (p.used or p.mark == "relevant") and p.mark != "irrelevant"]
    kept.sort(key=lambda p: (p.mark != "relevant", p.rerank_rank or p.bm25_rank, p.id))
    return [_passage(p) for p in kept], dropped


def knowledge_from_kb(revision: Revision, knowledge: "KnowledgeBase", top_n: int | None) -> tuple[list[Passage], list[str]]:
    """The KARD recipe (BM25 with the corrected rationale), minus irrelevant passages, relevant ones first."""
    c = revision.correction
    n = top_n if top_n is not None else default_top_n(c.dataset)
    if n < 1:
        raise ConfigError(f"top_n must be at least 1, got {n}. Fix: pass --top-n 1 or more")
    irrelevant = {p.id for p in c.passages if p.mark == "irrelevant"}
    relevant = [_passage(p) for p in c.passages if p.mark == "relevant" and not is_recalled(p.id)]
    hits = knowledge.search(strip_answer_line(c.rationale), n + len(irrelevant) + len(relevant))
    chosen = list(relevant)
    for hit in hits:
        if len(chosen) >= max(n, len(relevant)):
            break
        if hit.passage.id not in irrelevant and hit.passage.id not in {p.id for p in chosen}:
            chosen.append(hit.passage)
    return chosen, sorted(irrelevant)


def example_question_id(revision: Revision) -> str:
    """The question id an example carries: the dataset's, or for a typed question (every one has the id
    "custom") its item id, so two typed questions never share example ids or replace each other."""
    c = revision.correction
    return c.item_id if c.question_id.startswith("custom") else c.question_id


def curated_example(revision: Revision, passages: Sequence[Passage], dropped: Sequence[str]) -> CuratedExample:
    c = revision.correction
    question = _question(revision)
    question_id = example_question_id(revision)
    example = StudentExample(
        id=f"{question_id}#curated-r{revision.revision}",
        input=student_input(question, passages, with_knowledge=True),
        target=student_target(c.rationale, c.answer, c.options),
        source=f"curator:{c.curator}",
        passage_ids=tuple(p.id for p in passages),
        question_id=question_id,
        method="kard",
    )
    return CuratedExample(example, c.item_id, c.curator, revision.revision, revision.created_at,
                          c.original_source, c.teacher_model, c.student_model, c.rating, tuple(c.tags), tuple(dropped))


def build_curated(revisions: Iterable[Revision], config: ExportConfig = ExportConfig(),
                  knowledge: "KnowledgeBase | None" = None) -> tuple[list[CuratedExample], list[Exclusion]]:
    """Examples from the latest revisions (sorted by item id), and the items left out with why."""
    if config.knowledge_from not in KNOWLEDGE_FROM:
        raise ConfigError(f"knowledge_from must be one of {', '.join(KNOWLEDGE_FROM)}, got {config.knowledge_from!r}")
    if config.knowledge_from == "kb" and knowledge is None:
        raise ConfigError("knowledge_from='kb' needs a knowledge base. Fix: pass --kb DIR, or use --knowledge-from store")
    examples: list[CuratedExample] = []
    excluded: list[Exclusion] = []
    for revision in sorted(revisions, key=lambda r: r.item_id):
        reason = exclusion_reason(revision, config)
        if reason:
            excluded.append(Exclusion(revision.item_id, revision.revision, reason))
            continue
        if config.knowledge_from == "kb":
            passages, dropped = knowledge_from_kb(revision, knowledge, config.top_n)  # type: ignore[arg-type]
        else:
            passages, dropped = knowledge_from_store(revision)
        examples.append(curated_example(revision, passages, dropped))
    return examples, excluded


def export_corrections(store: AnnotationStore, out_dir: str | Path, config: ExportConfig = ExportConfig(), *,
                       knowledge: "KnowledgeBase | None" = None, hf_dataset: bool = True,
                       allow_empty: bool = False, latest: Sequence[Revision] | None = None) -> ExportResult:
    """Write `corrections.jsonl`, the `hf_dataset/` folder and `export.json` into `out_dir`, from `latest` (the
    store's latest revisions, read once by a caller that uses them again) or the store's latest revisions now."""
    examples, excluded = build_curated(store.latest() if latest is None else latest, config, knowledge)
    if not examples and not allow_empty:
        if excluded:
            raise DataError(all_excluded(excluded), path=store.path, fix=keeping_fix(excluded))
        raise DataError(f"no accepted corrections to export from {store.path}",
                        fix="save corrections in curator mode (see docs/closing_the_loop.md for the exclusion rule)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder. Fix: pass a folder to export into (it is created if "
                          "missing), not an existing file")
    out.mkdir(parents=True, exist_ok=True)
    examples_path = write_curated(examples, out / EXAMPLES_FILE)
    dataset_path = save_hf_dataset(examples, out / DATASET_DIR) if hf_dataset else None
    if not hf_dataset:
        drop_stale_dataset(out / DATASET_DIR)
    manifest = {"examples": len(examples), "excluded": [asdict(e) for e in excluded], "config": asdict(config),
                "files": {"jsonl": EXAMPLES_FILE, "hf_dataset": DATASET_DIR if hf_dataset else None}}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("exported %d correction(s) to %s (%d excluded)", len(examples), out, len(excluded))
    return ExportResult(tuple(examples), tuple(excluded), examples_path, dataset_path, asdict(config))


def drop_stale_dataset(folder: Path) -> None:
    """Remove the dataset folder an earlier export left in `folder`'s place: an export without one (`hf_dataset=False`)
    must not leave a dataset of other corrections beside its export.json, which says it has none."""
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    elif folder.exists() or folder.is_symlink():
        folder.unlink()
    else:
        return
    log.info("removed %s: an earlier export's dataset, out of date now", folder)


SHOWN_EXCLUSIONS = 5
"""Excluded items an all-excluded export's error names one by one; the others are counted."""
KEEPING_FIXES = (  # (how exclusion_reason's reason starts, how to keep such an item)
    ("rejected", "edit the note of an item you did not mean to reject in the app"),
    ("rated ", "pass a lower --low-rating (e.g. --low-rating 0) to keep low-rated items with the rationale unchanged"),
    ("rating ", "pass a lower --min-rating, or leave it out"),
    ("corrected answer ", "pass --keep-gold-mismatch to keep answers that differ from the gold one"),
    ("the rationale concludes ", "pass --keep-inconsistent to keep rationales concluding another answer"),
)


def all_excluded(excluded: Sequence[Exclusion]) -> str:
    """Why an export found nothing to write although corrections are saved: each item left out, with why."""
    named = "; ".join(f"{e.item_id} (revision {e.revision}): {e.reason}" for e in excluded[:SHOWN_EXCLUSIONS])
    more = f"; and {len(excluded) - SHOWN_EXCLUSIONS} more" if len(excluded) > SHOWN_EXCLUSIONS else ""
    return f"all {len(excluded)} saved correction(s) were excluded, nothing was exported: {named}{more}"


def keeping_fix(excluded: Sequence[Exclusion]) -> str:
    """How to keep the `excluded` items: the flag (or the app's note) for each reason among them."""
    fixes = [fix for start, fix in KEEPING_FIXES if any(e.reason.startswith(start) for e in excluded)]
    return "; or ".join(fixes or ["save corrections the exclusion rule keeps"]) + \
        " (docs/closing_the_loop.md: the exclusion rule)"


def write_curated(examples: Sequence[CuratedExample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(example.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
    return path


def dataset_features():
    """Fixed column types, so an export with no tags or no passages has the same schema as any other."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features({
        "id": text, "input": text, "target": text, "source": text, "passage_ids": List(text),
        "question_id": text, "method": text, "item_id": text, "curator": text, "revision": Value("int64"),
        "created_at": text, "original_source": text, "teacher_model": text, "student_model": text,
        "rating": Value("int64"), "tags": List(text), "dropped_passage_ids": List(text),
    })


def save_hf_dataset(examples: Sequence[CuratedExample], folder: str | Path) -> Path:
    """`datasets.Dataset.from_list(...).save_to_disk(folder)`; load it back with `load_from_disk`."""
    try:
        from datasets import Dataset
    except ImportError as error:  # pragma: no cover - datasets is a requirement
        from kard.errors import MissingDependencyError

        raise MissingDependencyError("datasets", "the Hugging Face dataset export") from error
    folder = Path(folder)
    features = dataset_features()
    if examples:
        dataset = Dataset.from_list([e.to_dict() for e in examples], features=features)
    else:  # from_list cannot infer an empty table's columns even with features given
        dataset = Dataset.from_dict({name: [] for name in features}, features=features)
    dataset.save_to_disk(str(folder))
    return folder


def merge_examples(base: Sequence[StudentExample], corrections: Sequence[StudentExample],
                   weight: int = 1) -> list[StudentExample]:
    """Teacher/reference examples with corrected questions replaced, then each correction `weight` times.

    A correction replaces every base example of its question (all teacher samples): the curator's
    rationale is the one the student should learn for it. `weight` > 1 oversamples corrections (each
    copy gets a `~k` suffix on its id so ids stay unique).
    """
    if weight < 1:
        raise ConfigError(f"correction weight must be at least 1, got {weight}. Fix: pass --correction-weight 1 or more")
    corrected = {e.question_id for e in corrections if e.question_id}
    kept = [e for e in base if not (e.question_id and e.question_id in corrected)]
    repeated = [e if k == 0 else _copy(e, k) for k in range(weight) for e in corrections]
    log.info("training set: %d base examples (%d replaced by corrections) + %d corrections x %d",
             len(kept), len(base) - len(kept), len(corrections), weight)
    return kept + repeated


def _copy(example: StudentExample, k: int) -> StudentExample:
    from dataclasses import replace

    return replace(example, id=f"{example.id}~{k}")


def read_corrections_dir(path: str | Path) -> Path:
    """The corrections JSONL inside an export folder (or the file itself)."""
    path = Path(path)
    file = path / EXAMPLES_FILE if path.is_dir() else path
    if not file.is_file():
        raise DataError("no exported corrections found", path=path,
                        fix="run `python -m kard export --db annotations/annotations.db --out DIR` first")
    return file


__all__ = ["ExportConfig", "CuratedExample", "Exclusion", "ExportResult", "exclusion_reason", "build_curated",
           "export_corrections", "write_curated", "save_hf_dataset", "merge_examples", "knowledge_from_store",
           "knowledge_from_kb", "read_corrections_dir"]

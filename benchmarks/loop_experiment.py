"""Closing the loop, with a control: do curators' corrections beat the same training without them?

    python benchmarks/loop_experiment.py --dataset strategyqa --corrections 10 20 --rounds 2
    python benchmarks/loop_experiment.py --dataset obqa --corrections 10 20 --rounds 2
    python benchmarks/loop_experiment.py --dataset obqa --corrections 20 --rounds 2 --uncorrected-arm
    python benchmarks/loop_experiment.py --dataset obqa --corrections 20 --rounds 1 --train-seed 1  (a replicate)
    python benchmarks/loop_experiment.py --dataset obqa --corrections 20 --rounds 3 --uncorrected-arm --engine transformers

Needs the folder `benchmarks/train_default_student.sh` writes (RUN, default runs/default-student: the
knowledge bases and the training examples of the shipped student; `TRAIN=0 bash
benchmarks/train_default_student.sh` builds it) and the datasets (--data, default ../shared/data beside
the checkout); both are checked before any model loads. Resumable: every round, evaluation and report is
kept under --out and skipped when it exists. The settings that decide them are recorded in --out
(`<dataset>.settings.json`, `<dataset>-n<N>.settings.json`); a rerun with other settings on the same --out
is refused, naming the changed settings (use another --out for them). --rounds may grow on a rerun.

The design (docs/closing_the_loop.md):
- start from the shipped student (demo/student); questions it never trained on (StrategyQA: the 300
  held out of its training; OpenBookQA: dev) are shuffled with --seed and cut into a correction pool and
  a disjoint held-out set (>= 200), never used for anything but measuring;
- each round, the "corrections" arm's wrong answers on the pool, at most N not corrected before, are
  corrected by a SCRIPTED CURATOR, not a person: the reference rationale of the data (StrategyQA: FLAN's
  human rationale; OpenBookQA: the gold fact), concluded by the gold option's text as the shipped
  student's rationales are, and the gold answer, saved through AnnotationStore.save as the app does;
- both arms then retrain through the real retrain job (kard.loop.jobs.run_job): the same replay sample of
  the student's own training examples, the same steps, batch, learning rate and seed; the corrections arm
  also reads its annotation store (corrections oversampled, KARD retrieval with the corrected rationale),
  the control arm does not. Each arm continues from its own previous round;
- with --uncorrected-arm, a third arm ("uncorrected") reads a store of the same questions saved with
  the student's own rationale and answer, unchanged (a placebo: the corrected questions, not the
  corrections' content); its rows are compared with the control the same way;
- with --replay own, each arm's replay sample carries that arm's own greedy answers (generated before
  its round) instead of the training rationales, so the replay holds the student where it is;
- both arms answer the held-out questions (greedy, CTranslate2 int8, or float32 with --engine transformers;
  the evaluation settings of evaluate_default_student.sh); the report gives accuracy with 95% intervals,
  fixed/broken against the base student and the previous round, and the exact McNemar test of
  corrections vs control.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.annotations import AnnotationStore, Correction, PassageRecord  # noqa: E402
from kard.config import GenerationConfig, RetrievalConfig  # noqa: E402
from kard.datasets import load_questions  # noqa: E402
from kard.distill import concluded, read_examples, split_questions, write_examples  # noqa: E402
from kard.errors import KardError  # noqa: E402
from kard.evaluation import EvalRecord, check_settings, evaluate, read_records, records_score  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.loop.jobs import run_job  # noqa: E402
from kard.loop.retrain import RetrainSpec  # noqa: E402
from kard.loop.round_folder import current  # noqa: E402
from kard.loop.rounds import BASE_ROUND, round_report, write_report  # noqa: E402
from kard.metrics import compare_paired, compare_rounds  # noqa: E402
from kard.pipeline import Recalls  # noqa: E402
from kard.prompts import PROMPT_VERSION  # noqa: E402
from kard.records import Question, item_id_for  # noqa: E402
from kard.teacher.recorded import import_flan_strategyqa, import_medqa_recorded, import_openbookqa_facts  # noqa: E402

log = logging.getLogger("loop_experiment")
DATA = ROOT.parent / "shared" / "data"
CURATOR = "reference-rationale-bot"
NOTE = "scripted curator: the data's reference rationale and gold answer; not a person"
PLACEBO_NOTE = "placebo: the student's own rationale and answer saved unchanged; not a correction"
ARMS = ("corrections", "control")
PLACEBO = "uncorrected"
STORES = {"corrections": "corrections.db", PLACEBO: "uncorrected.db"}  # the control reads no store
# What decides the answers shared by every N of a dataset (<out>/<dataset>/) and, with TRAINING_SETTINGS,
# those of one N's folder; --rounds, --corrections' other values and --uncorrected-arm only add to them.
SPLIT_SETTINGS = ("dataset", "pool", "heldout", "seed", "engine", "run", "data")
TRAINING_SETTINGS = ("steps", "batch_size", "lr", "weight", "bf16", "train_seed", "replay")
DATA_FILES = {"medqa": ("medqa/dev.jsonl", "medqa/dev_teacher_cot_gpt-4-32k.jsonl"),
              "strategyqa": ("strategyqa/train.json", "strategyqa/flan_cot_train.tsv"),
              "obqa": ("openbookqa/dev_complete.jsonl",)}
RUN_FILES = {"medqa": ("medqa_kard.jsonl",), "strategyqa": ("kb_strategyqa", "strategyqa_kard.jsonl"),
             "obqa": ("kb_obqa", "obqa_kard.jsonl")}


def repo_path(relative: str) -> str:
    """A path inside the checkout: as written when run from its root (so records keep naming it the same
    way), else anchored at the checkout, so the script runs from any folder."""
    return relative if (Path.cwd() / relative).resolve() == (ROOT / relative).resolve() else str(ROOT / relative)


BASE_STUDENT = repo_path("demo/student")


def check_inputs(dataset: str, data: Path, run: Path) -> None:
    """The datasets and the training run's folder, checked before any model loads: one line naming the fix."""
    for name in DATA_FILES[dataset]:
        if not (data / name).exists():
            raise SystemExit(f"error: {data / name} does not exist (the datasets). Fix: put the shared datasets at "
                             "../shared/data beside the checkout, or pass --data FOLDER")
    for name in RUN_FILES[dataset]:
        if not (run / name).exists():
            raise SystemExit(f"error: {run / name} does not exist (the shipped student's knowledge bases and training "
                             f"examples). Fix: build them with `TRAIN=0 RUN={run} bash "
                             "benchmarks/train_default_student.sh`, or pass --run FOLDER of that script")


def recorded_settings(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    return {name: str(Path(value).resolve() if isinstance(value, Path) else value)
            for name, value in vars(args).items() if name in names}


def check_out_folders(args: argparse.Namespace) -> None:
    """Refuse a rerun into --out with other settings (kard.evaluation.check_settings), before any model loads:
    the dataset's shared folder (the base student's answers) and each N's folder; record the settings."""
    args.out.mkdir(parents=True, exist_ok=True)
    folders = {args.out / args.dataset: recorded_settings(args, SPLIT_SETTINGS)}
    for n in args.corrections:
        folders[args.out / f"{args.dataset}-n{n}{replicate(args)}"] = {
            **recorded_settings(args, SPLIT_SETTINGS + TRAINING_SETTINGS), "corrections": str(n)}
    for folder, settings in folders.items():
        check_settings(folder, settings, resuming=folder.exists())


@dataclass(frozen=True)
class Setup:
    """Where a dataset's questions, references, knowledge and training examples come from."""

    name: str
    questions: list[Question]  # never trained on by the shipped student
    references: dict[str, str]  # question id -> reference rationale
    kb: str
    examples: str  # the shipped student's training examples of this dataset (the replay pool)
    top_k: int
    new_tokens: int


def setup(dataset: str, run: Path, data: Path = DATA) -> Setup:
    if dataset == "medqa":  # the 300 held out of the student's MedQA training; GPT-4's right answers as references
        questions = split_questions(load_questions(data / "medqa" / "dev.jsonl"), 300, seed=0)[1]
        gold = {q.id: q.answer for q in questions}
        gpt4 = import_medqa_recorded(data / "medqa" / "dev_teacher_cot_gpt-4-32k.jsonl", questions)
        references = {qid: rs[0].text for qid, rs in gpt4.items() if rs and rs[0].answer == gold[qid]}
        kb = repo_path("demo/passages.jsonl")
        return Setup(dataset, questions, references, kb, str(run / "medqa_kard.jsonl"), 1, 128)
    if dataset == "strategyqa":
        questions = split_questions(load_questions(data / "strategyqa" / "train.json"), 300, seed=0)[1]
        flan = import_flan_strategyqa(data / "strategyqa" / "flan_cot_train.tsv", questions)
        references = {qid: rs[0].text for qid, rs in flan.items() if rs}
        return Setup(dataset, questions, references, str(run / "kb_strategyqa"), str(run / "strategyqa_kard.jsonl"), 1, 96)
    path = data / "openbookqa" / "dev_complete.jsonl"
    facts = import_openbookqa_facts(path)
    references = {qid: rs[0].text for qid, rs in facts.items() if rs}
    return Setup(dataset, load_questions(path), references, str(run / "kb_obqa"), str(run / "obqa_kard.jsonl"), 3, 64)


@functools.lru_cache(maxsize=2)
def knowledge_base(path: str) -> KnowledgeBase:
    """The dataset's index, opened once for every evaluation and correction of the run."""
    return KnowledgeBase.open(path)


def split(s: Setup, pool: int, heldout: int, seed: int) -> tuple[list[Question], list[Question]]:
    usable = sorted((q for q in s.questions if q.id in s.references), key=lambda q: q.id)
    random.Random(seed).shuffle(usable)
    if len(usable) < pool + heldout:
        raise SystemExit(f"{s.name}: {len(usable)} usable questions, fewer than pool {pool} + held-out {heldout}")
    return usable[:pool], usable[pool: pool + heldout]


def answers(student_path: str, questions: Sequence[Question], s: Setup, out: Path, engine: str,
            recall: "Recalls | None" = None) -> dict[str, EvalRecord]:
    """Greedy answers of a student (cached in `out`, resumed by kard.evaluation); `recall` hands saved
    corrections back (kard.recall; benchmarks/loop_recall.py)."""
    if not questions:
        return {}
    saved = read_records(out) if out.is_file() else {}
    if all(q.id in saved for q in questions):  # only the questions asked: the file may hold others
        return {q.id: saved[q.id] for q in questions}
    from kard.student import Student

    student = Student.load(student_path, engine=engine)
    result = evaluate(student, questions, "kard-bm25", out=out, knowledge=knowledge_base(s.kb),
                      retrieval=RetrievalConfig(top_k=s.top_k), generation=GenerationConfig(max_new_tokens=s.new_tokens),
                      progress=False, recall=recall)
    return {r.question_id: r for r in result.records}


def correct(store: AnnotationStore, wrong: Sequence[tuple[Question, EvalRecord]], s: Setup, student: str,
            placebo: bool = False) -> list[str]:
    """Save the scripted curator's corrections of `wrong` through the store's real API; their question ids.
    With `placebo`, the student's own rationale and answer are saved unchanged instead (no gold named, no
    rating, so the export keeps them as it keeps an accepted answer)."""
    knowledge = knowledge_base(s.kb)
    for question, record in wrong:
        hits = knowledge.search(question.text, 10)
        used = set(record.passage_ids)
        if placebo:
            content = dict(rationale=record.rationale, answer=record.answer or "", gold_answer=None, rating=None,
                           tags=(), note=PLACEBO_NOTE)
        else:
            content = dict(rationale=concluded(s.references[question.id], question), answer=question.answer or "",
                           gold_answer=question.answer, rating=1, tags=("reasoning error",), note=NOTE)
        store.save(Correction(
            item_id=item_id_for(question), question_id=question.id, question=question.text,
            options=dict(question.options), dataset=question.dataset, kind=question.kind,
            passages=tuple(PassageRecord.from_hit(h, used=h.passage.id in used) for h in hits),
            student_model=student, prompt_version=PROMPT_VERSION,
            decoding={"strategy": "greedy", "max_new_tokens": s.new_tokens, "top_k_passages": s.top_k},
            student_rationale=record.rationale, student_answer=record.answer, original_rationale=record.rationale,
            original_source=f"student {student}", curator=CURATOR, **content))
    return [q.id for q, _ in wrong]


def replay_sample(s: Setup, size: int, seed: int, out: Path) -> str:
    """A seeded sample of the shipped student's own training examples, the same for both arms of a round."""
    if not out.is_file():
        examples = read_examples(s.examples)
        write_examples(random.Random(seed).sample(examples, min(size, len(examples))), out)
    return str(out)


def own_replay(student_path: str, replay: str, out: Path, s: Setup, engine: str) -> str:
    """The round's replay sample answered by the arm's current student (--replay own; kard.loop.self_replay)."""
    if not out.is_file():
        from kard.loop.self_replay import own_targets
        from kard.student import Student

        student = Student.load(student_path, engine=engine)
        write_examples(own_targets(student, read_examples(replay), s.new_tokens), out)
    return str(out)


def retrain(arm_root: Path, examples: str, store: Path | None, s: Setup, args: argparse.Namespace, seed: int) -> str:
    """One round of one arm through the real retrain job; the new round's student folder."""
    training = {"max_steps": args.steps, "batch_size": args.batch_size, "grad_accum": 1, "learning_rate": args.lr,
                "lora": True, "bf16": args.bf16, "max_length_cap": 512, "save_steps": 10_000, "seed": seed}
    spec = RetrainSpec(root=str(arm_root), student=BASE_STUDENT, examples=examples, db=str(store) if store else None,
                       correction_weight=args.weight, knowledge_from="kb", kb=s.kb, training=training, threads=2,
                       note=f"loop experiment, {arm_root.name}")
    status = run_job(spec)
    if status.state != "succeeded":
        raise SystemExit(f"{arm_root}: the retrain job {status.state}: {status.error or status.message}")
    return str(arm_root / current(arm_root)["round"] / "student")


def replicate(args: argparse.Namespace) -> str:
    """The folder suffix of a replicate (a training seed other than the split's) and of self-replay runs."""
    return ("" if args.train_seed == args.seed else f"-t{args.train_seed}") + ("-own" if args.replay == "own" else "")


def run_setting(s: Setup, n: int, args: argparse.Namespace) -> dict:
    """Every arm through --rounds rounds with at most `n` new corrections a round; the setting's report."""
    arms = ARMS + ((PLACEBO,) if args.uncorrected_arm else ())
    pool, heldout = split(s, args.pool, args.heldout, args.seed)
    shared, folder = args.out / s.name, args.out / f"{s.name}-n{n}{replicate(args)}"
    folder.mkdir(parents=True, exist_ok=True)
    base_held = answers(BASE_STUDENT, heldout, s, shared / "base-heldout.jsonl", args.engine)
    base_pool = answers(BASE_STUDENT, pool, s, shared / "base-pool.jsonl", args.engine)
    students = {arm: BASE_STUDENT for arm in arms}
    held = {arm: base_held for arm in arms}
    history = {arm: {BASE_ROUND: (BASE_STUDENT, answer_letters(base_held))} for arm in arms}
    pool_answers, corrected, rounds = base_pool, [], []
    stores = {arm: AnnotationStore(folder / STORES[arm]) for arm in arms if arm in STORES}
    by_id = {q.id: q for q in pool}
    for number in range(1, args.rounds + 1):
        done = {r.item_id for r in stores["corrections"].latest()}
        wrong = [(by_id[qid], r) for qid, r in pool_answers.items()
                 if not r.correct and item_id_for(by_id[qid]) not in done][:n]
        if not (folder / f"round-{number}.corrected.json").is_file():
            ids = correct(stores["corrections"], wrong, s, students["corrections"])
            (folder / f"round-{number}.corrected.json").write_text(json.dumps(ids))
        this_round = json.loads((folder / f"round-{number}.corrected.json").read_text())
        corrected += this_round
        if PLACEBO in stores:  # the same questions as this round's corrections, the student's own words
            kept = {r.item_id for r in stores[PLACEBO].latest()}
            correct(stores[PLACEBO], [(by_id[qid], pool_answers[qid]) for qid in this_round
                                      if item_id_for(by_id[qid]) not in kept], s, students["corrections"], placebo=True)
        replay = replay_sample(s, args.steps * args.batch_size, args.train_seed + number, folder / f"round-{number}.replay.jsonl")
        previous = dict(held)
        answered: dict[str, str] = {}  # --replay own: arms that start from the same student share its answers
        for arm in arms:
            arm_root = folder / arm
            finished = arm_root / f"round-{number:03d}" / "student"
            store = folder / STORES[arm] if arm in STORES else None
            if finished.is_dir():
                students[arm] = str(finished)
            else:
                examples = replay
                if args.replay == "own":
                    if students[arm] not in answered:
                        answered[students[arm]] = own_replay(students[arm], replay, folder / f"round-{number}.{arm}.own-replay.jsonl",
                                                             s, args.engine)
                    examples = answered[students[arm]]
                students[arm] = retrain(arm_root, examples, store, s, args, args.train_seed)
            held[arm] = answers(students[arm], heldout, s, folder / f"round-{number}.{arm}.heldout.jsonl", args.engine)
            history[arm][f"round-{number:03d}"] = (students[arm], answer_letters(held[arm]))
        pool_answers = answers(students["corrections"], pool, s, folder / f"round-{number}.corrections.pool.jsonl",
                               args.engine)
        rounds.append(round_row(number, len(corrected), held, previous, base_held))
        rounds[-1]["corrected_right_on_pool"] = sum(pool_answers[qid].correct for qid in corrected)
    report = {"dataset": s.name, "corrections_per_round": n, "pool": len(pool), "heldout": len(heldout),
              "corrected_ids": corrected, "base": accuracy(base_held), "rounds": rounds,
              "settings": {k: str(v) for k, v in vars(args).items()}}
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    gold = {q.id: q.answer for q in heldout}  # the app's Retrain & rounds tab shows this report for the folder
    write_report(round_report(history["corrections"], gold, control=history["control"]), folder / "corrections" / "report")
    return report


def answer_letters(records: dict[str, EvalRecord]) -> dict[str, str | None]:
    return {qid: r.answer for qid, r in records.items()}


def accuracy(records: dict[str, EvalRecord]) -> dict:
    result = records_score(list(records.values()))
    return {"correct": result.correct, "total": result.total, "accuracy": result.accuracy,
            "interval": list(result.interval)}


def round_row(number: int, corrections: int, held: dict, previous: dict, base: dict) -> dict:
    """One round: each arm's accuracy and fixed/broken, and each treated arm against the control."""
    right = {arm: {qid: r.correct for qid, r in held[arm].items()} for arm in held}
    row: dict = {"round": number, "corrections_so_far": corrections}
    for arm in held:
        if arm != "control":
            test = compare_paired(right[arm], right["control"])
            row[f"{arm}_vs_control"] = {"only_arm": test.only_first, "only_control": test.only_second, "p": test.p_value}
    for arm in held:
        answers_now = {qid: r.answer for qid, r in held[arm].items()}
        gold = {qid: r.gold for qid, r in held[arm].items()}
        versus_base = compare_rounds({qid: r.answer for qid, r in base.items()}, answers_now, gold)
        versus_previous = compare_rounds({qid: r.answer for qid, r in previous[arm].items()}, answers_now, gold)
        row[arm] = {**accuracy(held[arm]), "fixed_vs_base": len(versus_base.fixed), "broken_vs_base": len(versus_base.broken),
                    "fixed_vs_previous": len(versus_previous.fixed), "broken_vs_previous": len(versus_previous.broken)}
    return row


def markdown(reports: Sequence[dict]) -> str:
    lines = ["| dataset | N a round | round | corrections so far | arm | held-out accuracy % (95% CI) | fixed / broken vs base "
             "| fixed / broken vs previous round | this arm vs control: only / only, McNemar p | corrected questions right |",
             "|---|---:|---:|---:|---|---|---|---|---|---|"]
    for report in reports:
        base = report["base"]
        low, high = base["interval"]
        lines.append(f"| {report['dataset']} | {report['corrections_per_round']} | 0 | 0 | base (shipped student) | "
                     f"{100 * base['accuracy']:.1f} ({100 * low:.0f}-{100 * high:.0f}) | | | |")
        for row in report["rounds"]:
            for arm in (a for a in (*ARMS, PLACEBO) if a in row):
                a = row[arm]
                low, high = a["interval"]
                test = row.get(f"{arm}_vs_control")
                versus = f"{test['only_arm']} / {test['only_control']}, p = {test['p']:.3g}" if test else ""
                learned = row.get("corrected_right_on_pool", "") if arm == "corrections" else ""
                lines.append(f"| {report['dataset']} | {report['corrections_per_round']} | {row['round']} | "
                             f"{row['corrections_so_far']} | {arm} | {100 * a['accuracy']:.1f} ({100 * low:.0f}-{100 * high:.0f}) | "
                             f"{a['fixed_vs_base']} / {a['broken_vs_base']} | {a['fixed_vs_previous']} / "
                             f"{a['broken_vs_previous']} | {versus} | {learned} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["strategyqa", "obqa"], required=True)
    parser.add_argument("--corrections", type=int, nargs="+", default=[10, 20], help="N: new corrections a round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=100, help="questions whose wrong answers get corrected")
    parser.add_argument("--heldout", type=int, default=200, help="held-out questions, never corrected")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps a round (both arms)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--weight", type=int, default=3, help="times each correction is seen per epoch")
    parser.add_argument("--engine", choices=["ctranslate2", "transformers"], default="ctranslate2",
                        help="how every student answers: CTranslate2 int8 (fast) or transformers float32 (the reference; "
                             "no int8 rounding noise between two students whose weights differ a little)")
    parser.add_argument("--replay", choices=["teacher", "own"], default="teacher",
                        help="the replay sample's targets: the training rationales (teacher), or each arm's own greedy "
                             "answers to those prompts before the round (own: rehearsal, kard.loop.self_replay; "
                             "kept in its own folder, <dataset>-n<N>-own)")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 training (CPUs without bf16)")
    parser.add_argument("--seed", type=int, default=0, help="the pool / held-out split")
    parser.add_argument("--train-seed", type=int, help="replay sample and training seed (default --seed); a value "
                        "other than --seed is a replicate, kept in its own folder (<dataset>-n<N>-t<seed>)")
    parser.add_argument("--uncorrected-arm", action="store_true",
                        help="a third arm: the corrected questions saved with the student's own rationales (placebo)")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default-student",
                        help="the folder of benchmarks/train_default_student.sh (default runs/default-student)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared datasets (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "loop-experiment",
                        help="results; a rerun with other settings needs another --out (default runs/loop-experiment)")
    args = parser.parse_args(argv)
    if args.train_seed is None:
        args.train_seed = args.seed
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_inputs(args.dataset, args.data, args.run)
    try:
        check_out_folders(args)
        s = setup(args.dataset, args.run, args.data)
        reports = [run_setting(s, n, args) for n in args.corrections]
    except KardError as error:
        raise SystemExit(f"error: {error}") from None
    table = markdown(reports)
    (args.out / f"{args.dataset}{replicate(args)}-report.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

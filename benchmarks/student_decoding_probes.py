"""Probes of how the shipped student's answer is read and decoded (docs/results.md, "Decoding probes").

    python benchmarks/student_decoding_probes.py option-text --saved runs/shipped-eval/obqa/kard/kard-bm25-greedy.jsonl
    python benchmarks/student_decoding_probes.py no-repeat --ngram 8 --out runs/probes/sqa-n8.jsonl
    python benchmarks/student_decoding_probes.py passage-ensemble --variants 4 --out runs/probes/obqa-ensemble.jsonl

option-text: for each OpenBookQA dev question of a saved greedy evaluation, keep the student's
    rationale up to "So the answer is" and let the student's own probability of each option's text
    after it choose the answer (sum and mean log-probability over the option's tokens, and the first
    token alone), against the letter the evaluation read. One forward pass a question plus one per
    option, transformers float32, the retrieval settings of evaluate_default_student.sh.
no-repeat: the StrategyQA held-out evaluation of evaluate_default_student.sh answered by CTranslate2
    int8 (the app's engine) with `no_repeat_ngram_size` N (CTranslate2 counts the generated tokens
    only, so quoting the passage stays allowed); --ngram 0 is plain greedy.
passage-ensemble: OpenBookQA dev, transformers float32, the retrieval settings of evaluate_default_student.sh
    (BM25 top-3 facts). Variant i puts BM25's i-th candidate first, followed by the other top-3 facts
    (variant 0 is the evaluation's own prompt); the student answers each variant greedily, and each
    answer's confidence is the softmax over the valid letters after its rationale and "Answer:". Rules
    compared with variant 0: majority vote, the most confident variant, and the summed letter
    probabilities. One JSON line a question (resumable), then the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.config import GenerationConfig, RetrievalConfig  # noqa: E402
from kard.datasets import load_questions  # noqa: E402
from kard.distill import split_questions  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.pipeline import Pipeline, fit_prompt, input_budget  # noqa: E402
from kard.student import Student  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RUN = ROOT / "runs" / "default-student"
CONCLUSION = re.compile(r"So the answer is", re.IGNORECASE)


def obqa_pipeline() -> Pipeline:
    """The shipped student in float32 with the OpenBookQA settings of evaluate_default_student.sh."""
    retrieval = RetrievalConfig(top_k=3)
    return Pipeline(KnowledgeBase.open(str(RUN / "kb_obqa"), config=retrieval), Student.load("demo/student", engine="transformers"),
                    retrieval=retrieval, generation=GenerationConfig(max_new_tokens=64))


def evaluation_prompt(pipeline: Pipeline, question, passages) -> str:
    """The prompt the evaluation gives the student for these passages (kard.pipeline.fit_prompt)."""
    student = pipeline.student
    return fit_prompt(question, passages, student.count_tokens, student.text_ids, student.decode,
                      input_budget(student, pipeline.generation)).prompt


def option_log_probs(student: Student, prefix: list[int], options: dict[str, str]) -> dict[str, list[float]]:
    """Each option's token log-probabilities after `prefix` (the prefix is run once, its cache copied)."""
    import torch

    with torch.inference_mode():
        first = student.model(input_ids=torch.tensor([prefix]), use_cache=True)
        last = torch.log_softmax(first.logits[0, -1].float(), -1)
        result = {}
        for letter, text in options.items():
            ids = student.text_ids(f" {text.strip().rstrip('.')}.")
            scores = [float(last[ids[0]])]
            if len(ids) > 1:
                rest = student.model(input_ids=torch.tensor([ids[:-1]]), past_key_values=copy.deepcopy(first.past_key_values),
                                     use_cache=True)
                log_probs = torch.log_softmax(rest.logits[0].float(), -1)
                scores += [float(log_probs[j, ids[j + 1]]) for j in range(len(ids) - 1)]
            result[letter] = scores
    return result


def option_text(args: argparse.Namespace) -> None:
    saved = {json.loads(line)["question_id"]: json.loads(line) for line in args.saved.open(encoding="utf-8")}
    questions = [q for q in load_questions(DATA / "openbookqa" / "dev_complete.jsonl") if q.id in saved]
    pipeline = obqa_pipeline()
    student = pipeline.student
    rules = {"sum": sum, "mean": lambda s: sum(s) / len(s), "first token": lambda s: s[0]}
    right = {name: 0 for name in rules}
    read = 0
    for question in questions:
        record = saved[question.id]
        _, passages, _ = pipeline.retrieve(question)
        rationale = record["rationale"] or ""
        cut = list(CONCLUSION.finditer(rationale))
        fact = (rationale[: cut[-1].start()] if cut else rationale).strip()
        prompt = evaluation_prompt(pipeline, question, passages)
        prefix = student.prompt_ids(prompt) + student.text_ids(
            f" {fact} So the answer is" if fact else " So the answer is")
        scores = option_log_probs(student, prefix, dict(question.options))
        for name, rule in rules.items():
            right[name] += max(scores, key=lambda letter: rule(scores[letter])) == question.answer
        read += record["answer"] == question.answer
    print(f"| answer | OpenBookQA dev right of {len(questions)} |\n|---|---:|\n| letter the evaluation read | {read} |")
    for name, count in right.items():
        print(f"| option text by {name} of log-probabilities | {count} |")


def no_repeat(args: argparse.Namespace) -> None:
    import kard.engine as engine

    plain = engine.CTranslate2Engine._options

    def with_no_repeat(self, max_new_tokens, sampling):  # the one setting this probe changes
        options = plain(self, max_new_tokens, sampling)
        return {**options, "no_repeat_ngram_size": args.ngram} if args.ngram else options

    engine.CTranslate2Engine._options = with_no_repeat
    from kard.evaluation import evaluate

    questions = split_questions(load_questions(DATA / "strategyqa" / "train.json"), 300, seed=0)[1][: args.limit]
    retrieval = RetrievalConfig(top_k=1)
    result = evaluate(Student.load("demo/student", engine="ctranslate2"), questions, "kard-bm25", out=args.out,
                      knowledge=KnowledgeBase.open(str(RUN / "kb_strategyqa"), config=retrieval), retrieval=retrieval,
                      generation=GenerationConfig(max_new_tokens=96), progress=False)
    print(f"StrategyQA held-out, no_repeat_ngram_size {args.ngram}: {result.score.correct} of {result.score.total} right")


def passage_variants(passages: list, candidates: list, count: int) -> list[list]:
    """Variant i: candidate i first, then the top-k passages without it, keeping k passages."""
    variants = []
    for first in candidates[:count]:
        rest = [hit for hit in passages if hit.passage.id != first.passage.id]
        variants.append([first, *rest][: len(passages)])
    return variants


def letter_probabilities(student: Student, prompt: str, rationale: str, letters: tuple[str, ...]) -> dict[str, float]:
    """Softmax over the valid letters' next-token logits (Student.letter_logits)."""
    import torch

    logits = student.letter_logits(prompt, rationale, letters)
    chosen = torch.softmax(torch.tensor(list(logits.values())), 0)
    return {letter: round(float(p), 5) for letter, p in zip(logits, chosen)}


def ensemble_answers(variants: list[dict]) -> dict[str, str | None]:
    """The answer of each rule over one question's variants (variant 0 is the evaluation's prompt)."""
    from collections import Counter

    soft = Counter()
    for variant in variants:
        soft.update(variant["probabilities"])
    votes = Counter(v["answer"] for v in variants if v["answer"])
    top = max(votes.values(), default=0)
    tied = [letter for letter, n in votes.items() if n == top]
    confident = max(variants, key=lambda v: v["probabilities"].get(v["answer"], 0.0) if v["answer"] else -1.0)
    return {
        "variant 0 (as evaluated)": variants[0]["answer"],
        "majority vote (ties: summed probability)": max(tied, key=lambda letter: soft[letter]) if tied else None,
        "most confident variant": confident["answer"],
        "summed letter probabilities": max(soft, key=soft.get) if soft else None,
    }


def passage_ensemble(args: argparse.Namespace) -> None:
    from kard.metrics import mcnemar_exact
    from kard.pipeline import read_answers

    questions = load_questions(DATA / "openbookqa" / "dev_complete.jsonl")[: args.limit]
    pipeline = obqa_pipeline()
    student = pipeline.student
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["question_id"] for line in args.out.open(encoding="utf-8")} if args.out.exists() else set()
    with args.out.open("a", encoding="utf-8") as out:
        for start in range(0, len(questions), 8):
            batch = [q for q in questions[start : start + 8] if q.id not in done]
            jobs = []
            for question in batch:
                candidates, passages, _ = pipeline.retrieve(question)
                for hits in passage_variants(list(passages), list(candidates), args.variants):
                    prompt = evaluation_prompt(pipeline, question, hits)
                    jobs.append((question, hits, prompt))
            if not jobs:
                continue
            samples = student.generate_batch([p for _, _, p in jobs], pipeline.generation, letters=[q.letters for q, _, _ in jobs])
            rows: dict[str, list[dict]] = {}
            for (question, hits, prompt), sample in zip(jobs, samples):
                sample = read_answers(question, [sample])[0]
                rows.setdefault(question.id, []).append({
                    "passage_ids": [h.passage.id for h in hits], "rationale": sample.rationale, "answer": sample.answer,
                    "probabilities": letter_probabilities(student, prompt, sample.rationale, question.letters)})
            for question in batch:
                out.write(json.dumps({"question_id": question.id, "gold": question.answer,
                                      "variants": rows[question.id]}) + "\n")
            out.flush()
    records = [json.loads(line) for line in args.out.open(encoding="utf-8")]
    right = {r["question_id"]: {rule: answer == r["gold"] for rule, answer in ensemble_answers(r["variants"]).items()}
             for r in records}
    rules = list(next(iter(right.values())))
    print(f"| rule ({args.variants} passage orders) | OpenBookQA dev right of {len(records)} | only variant 0 / only the rule, McNemar |")
    print("|---|---:|---|")
    for rule in rules:
        base_only = sum(r[rules[0]] and not r[rule] for r in right.values())
        rule_only = sum(r[rule] and not r[rules[0]] for r in right.values())
        test = "" if rule == rules[0] else f"{base_only} / {rule_only}, p = {mcnemar_exact(base_only, rule_only):.3g}"
        print(f"| {rule} | {sum(r[rule] for r in right.values())} | {test} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    probes = parser.add_subparsers(dest="probe", required=True)
    option = probes.add_parser("option-text")
    option.add_argument("--saved", type=Path, required=True, help="a kard evaluate result file (OpenBookQA dev)")
    repeat = probes.add_parser("no-repeat")
    repeat.add_argument("--ngram", type=int, default=8)
    repeat.add_argument("--out", type=Path, required=True)
    repeat.add_argument("--limit", type=int, default=None, help="the first N held-out questions only (a quick check)")
    ensemble = probes.add_parser("passage-ensemble")
    ensemble.add_argument("--variants", type=int, default=4, help="how many of BM25's candidates take the first place")
    ensemble.add_argument("--out", type=Path, required=True)
    ensemble.add_argument("--limit", type=int, default=None, help="the first N dev questions only (a quick check)")
    args = parser.parse_args()
    {"option-text": option_text, "no-repeat": no_repeat, "passage-ensemble": passage_ensemble}[args.probe](args)


if __name__ == "__main__":
    main()

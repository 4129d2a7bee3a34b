"""Two probes of how the shipped student's answer is read and decoded (docs/results.md, "Decoding probes").

    python benchmarks/student_decoding_probes.py option-text --saved runs/shipped-eval/obqa/kard/kard-bm25-greedy.jsonl
    python benchmarks/student_decoding_probes.py no-repeat --ngram 8 --out runs/probes/sqa-n8.jsonl

option-text: for each OpenBookQA dev question of a saved greedy evaluation, keep the student's
    rationale up to "So the answer is" and let the student's own probability of each option's text
    after it choose the answer (sum and mean log-probability over the option's tokens, and the first
    token alone), against the letter the evaluation read. One forward pass a question plus one per
    option, transformers float32, the retrieval settings of evaluate_default_student.sh.
no-repeat: the StrategyQA held-out evaluation of evaluate_default_student.sh answered by CTranslate2
    int8 (the app's engine) with `no_repeat_ngram_size` N (CTranslate2 counts the generated tokens
    only, so quoting the passage stays allowed); --ngram 0 is plain greedy.
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
    retrieval = RetrievalConfig(top_k=3)
    student = Student.load("demo/student", engine="transformers")
    generation = GenerationConfig(max_new_tokens=64)
    pipeline = Pipeline(KnowledgeBase.open(str(RUN / "kb_obqa"), config=retrieval), student, retrieval=retrieval,
                        generation=generation)
    rules = {"sum": sum, "mean": lambda s: sum(s) / len(s), "first token": lambda s: s[0]}
    right = {name: 0 for name in rules}
    read = 0
    for question in questions:
        record = saved[question.id]
        _, passages, _ = pipeline.retrieve(question)
        rationale = record["rationale"] or ""
        cut = list(CONCLUSION.finditer(rationale))
        fact = (rationale[: cut[-1].start()] if cut else rationale).strip()
        prompt = fit_prompt(question, passages, student.count_tokens, student.text_ids, student.decode,
                            input_budget(student, generation)).prompt
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    probes = parser.add_subparsers(dest="probe", required=True)
    option = probes.add_parser("option-text")
    option.add_argument("--saved", type=Path, required=True, help="a kard evaluate result file (OpenBookQA dev)")
    repeat = probes.add_parser("no-repeat")
    repeat.add_argument("--ngram", type=int, default=8)
    repeat.add_argument("--out", type=Path, required=True)
    repeat.add_argument("--limit", type=int, default=None, help="the first N held-out questions only (a quick check)")
    args = parser.parse_args()
    if args.probe == "option-text":
        option_text(args)
    else:
        no_repeat(args)


if __name__ == "__main__":
    main()

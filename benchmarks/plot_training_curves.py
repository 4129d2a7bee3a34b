"""Plot the loss curves (and the reranker's top-1/top-3) of a `benchmarks/train_strategyqa.sh` run.

    python benchmarks/plot_training_curves.py --run runs/strategyqa --out docs/training_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=Path("runs/strategyqa"))
    parser.add_argument("--out", type=Path, default=Path("docs/training_curves.png"))
    parser.add_argument("--reranker", action="append", default=None,
                        help="reranker folder name(s) under --run (default reranker-minilm)")
    parser.add_argument("--eval", default="reranker_eval.json", help="eval-reranker --json file under --run")
    args = parser.parse_args()
    names = args.reranker or ["reranker-minilm"]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    student = read_jsonl(args.run / "student-kard" / "losses.jsonl")
    rerankers = {name: read_jsonl(args.run / name / "losses.jsonl") for name in names}
    eval_path = args.run / args.eval
    evaluation = json.loads(eval_path.read_text()) if eval_path.exists() else None

    fig, axes = plt.subplots(1, 3 if evaluation else 2, figsize=(15 if evaluation else 10, 4))
    ax = axes[0]
    ax.plot([r["step"] for r in student], [r["loss"] for r in student], marker=".", label="per step")
    ax.plot([r["step"] for r in student], smooth([r["loss"] for r in student], 5), label="mean of 5")
    ax.set(title="Student SmolLM2-135M (KARD, StrategyQA)", xlabel="optimizer step (batch 4)", ylabel="cross-entropy on target")
    ax.legend()

    ax = axes[1]
    twin = ax.twinx()
    for name, rows in rerankers.items():
        steps = [r["step"] for r in rows]
        line = ax.plot(steps, smooth([r["loss"] for r in rows], 10), label=f"{name}: annealed loss")[0]
        if rows and rows[0].get("loss_final_t") is not None:
            ax.plot(steps, smooth([r["loss_final_t"] for r in rows], 10), color=line.get_color(), linestyle="-.",
                    label=f"{name}: loss at tau1=tau2=1")
    first = next(iter(rerankers.values()))
    twin.plot([r["step"] for r in first], [r["tau1"] for r in first], color="grey", linestyle="--")
    twin.set_ylabel("tau1 (grey dashes)", color="grey")
    ax.set(title="Reranker MiniLM cross-encoder (mean of 10 steps)", xlabel="step (2 questions x 8 passages)",
           ylabel="KL loss")
    ax.legend(loc="upper left", fontsize=7)

    if evaluation:
        ax = axes[2]
        ks = sorted(evaluation["bm25"], key=int)
        width = 0.38
        xs = range(len(ks))
        ax.bar([x - width / 2 for x in xs], [evaluation["bm25"][k] for k in ks], width, label="BM25 (question)")
        ax.bar([x + width / 2 for x in xs], [evaluation["reranker"][k] for k in ks], width, label="BM25 + reranker")
        ax.axhline(evaluation["reachable"], color="grey", linestyle=":", label="target in top-100")
        ax.set_xticks(list(xs), [f"top-{k}" for k in ks])
        ax.set(title=f"Finds the rationale's passage ({evaluation['questions']} held-back q.)", ylim=(0, 1))
        ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

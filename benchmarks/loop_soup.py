"""The loop experiment's rounds averaged over training seeds: does a soup of the replicates' retrained
students keep what the corrections teach and lose the seed's churn? (docs/closing_the_loop.md 5k)

    python benchmarks/loop_soup.py runs/loop-rep5 --dataset obqa --corrections 20

Every replicate of `loop_experiment.py` (`<dataset>-n<N>` and `<dataset>-n<N>-t<seed>` under the root)
starts round 1 from the same shipped student and saves each arm's retrained student merged. This averages
each arm's round-1 students weight by weight (the shipped student plus the mean of the rounds' updates)
into `<root>/soup-<dataset>-n<N>/<arm>/`, has each soup answer the replicates' held-out questions with
the same settings, and prints accuracy, fixed / broken against the base student, and the exact McNemar
test of the corrections soup against the control soup. Resumable: soups and answers are kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from loop_experiment import ARMS, answers, setup, split  # noqa: E402
from loop_replicates import replicate_folders  # noqa: E402

from kard.evaluation import read_records  # noqa: E402
from kard.metrics import compare_paired, mcnemar_exact  # noqa: E402

WEIGHTS = "model.safetensors"


def average_students(students: list[Path], out: Path) -> Path:
    """The weight-by-weight mean of merged students of one architecture, saved as a student folder."""
    from safetensors.torch import load_file, save_file

    if (out / WEIGHTS).is_file():
        return out
    first = load_file(students[0] / WEIGHTS)
    dtype = next(iter(first.values())).dtype
    total = {name: tensor.double() for name, tensor in first.items()}
    for student in students[1:]:
        for name, tensor in load_file(student / WEIGHTS).items():
            total[name] += tensor.double()
    out.mkdir(parents=True, exist_ok=True)
    for item in students[0].iterdir():  # config, tokenizer, chat template, training record of the first
        if item.is_file() and item.name != WEIGHTS:
            shutil.copy(item, out / item.name)
    save_file({name: (tensor / len(students)).to(dtype).contiguous() for name, tensor in total.items()},
              str(out / WEIGHTS), metadata={"format": "pt"})
    (out / "soup.json").write_text(json.dumps({"students": [str(s) for s in students]}, indent=2))
    return out


def fixed_and_broken(base: dict[str, bool], after: dict[str, bool]) -> tuple[int, int]:
    """Questions right only after retraining (fixed) and only before (broken)."""
    change = compare_paired(base, after)
    return change.only_second, change.only_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the --out folder of the replicates")
    parser.add_argument("--dataset", choices=["strategyqa", "obqa"], default="obqa")
    parser.add_argument("--corrections", type=int, default=20)
    parser.add_argument("--pool", type=int, default=100, help="the replicates' correction pool")
    parser.add_argument("--heldout", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0, help="the replicates' pool / held-out split")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default-student")
    parser.add_argument("--engine", choices=["ctranslate2", "transformers"], default="transformers")
    args = parser.parse_args()
    folders = [folder for _, folder in replicate_folders(args.root, args.dataset, args.corrections)]
    if len(folders) < 2:
        raise SystemExit(f"fewer than two finished replicates under {args.root}")
    s = setup(args.dataset, args.run)
    _, heldout = split(s, args.pool, args.heldout, args.seed)
    base = {qid: r.correct for qid, r in read_records(args.root / args.dataset / "base-heldout.jsonl").items()}
    if set(base) != {q.id for q in heldout}:
        raise SystemExit("the held-out questions differ from the replicates' (check --pool, --heldout and --seed)")
    out = args.root / f"soup-{args.dataset}-n{args.corrections}"
    right = {}
    for arm in ARMS:
        soup = average_students([f / arm / "round-001" / "student" for f in folders], out / arm)
        records = answers(str(soup), heldout, s, out / f"{arm}.heldout.jsonl", args.engine)
        right[arm] = {qid: r.correct for qid, r in records.items()}
    print(f"soups of {len(folders)} replicates ({', '.join(f.name for f in folders)}); held-out {len(heldout)}; "
          f"base {sum(base.values())} right ({100 * sum(base.values()) / len(base):.1f}%)\n")
    print("| arm | right | % | fixed / broken vs base | broken <= fixed / 3 |\n|---|---:|---:|---|---|")
    for arm in ARMS:
        fixed, broken = fixed_and_broken(base, right[arm])
        n = sum(right[arm].values())
        print(f"| {arm} soup | {n} | {100 * n / len(right[arm]):.1f} | {fixed} / {broken} | {'yes' if 3 * broken <= fixed else 'no'} |")
    paired = compare_paired(right["corrections"], right["control"])
    print(f"\ncorrections soup vs control soup: right only with corrections {paired.only_first}, only with the "
          f"control {paired.only_second}; exact McNemar p = {mcnemar_exact(paired.only_first, paired.only_second):.3g}")


if __name__ == "__main__":
    main()

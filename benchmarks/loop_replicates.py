"""Replicates of the loop experiment: is the corrections arm's gap bigger than retraining noise?

    for t in 0 1 2 3; do python benchmarks/loop_experiment.py --dataset obqa --corrections 20 --rounds 1 \
        --heldout 400 --steps 24 --weight 8 --train-seed $t --out runs/loop-replicates; done
    python benchmarks/loop_replicates.py runs/loop-replicates --dataset obqa --corrections 20

Reads each replicate's held-out answers (round 1 of `<dataset>-n<N>` and `<dataset>-n<N>-t<seed>`) and
prints: per replicate, corrections vs control (accuracy, discordant pairs, exact McNemar p), each arm's
held-out answers fixed / broken against the base and how many corrected questions the corrections arm
now answers right; how many replicates meet broken <= fixed / 3; then the spread that retraining alone
gives (every pair of control runs, which differ only by their training seed and replay sample) beside
the corrections-minus-control gaps; a sign-flip test of the mean gap over replicates (4 replicates
cannot go below p = 0.125); and, pooled over replicates, a Wilcoxon signed-rank test over the held-out
questions of (replicates right with corrections - replicates right in the control).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

from kard.evaluation import read_records  # noqa: E402
from kard.metrics import compare_paired  # noqa: E402


def right_answers(path: Path) -> dict[str, bool]:
    return {qid: record.correct for qid, record in read_records(path).items()}


def replicate_folders(root: Path, dataset: str, n: int) -> list[tuple[str, Path]]:
    """(training seed label, folder) of every replicate with a finished round 1, seed 0's folder first."""
    found = [("0", root / f"{dataset}-n{n}")] + sorted(
        (p.name.rsplit("-t", 1)[1], p) for p in root.glob(f"{dataset}-n{n}-t*"))
    return [(seed, folder) for seed, folder in found
            if (folder / "round-1.control.heldout.jsonl").is_file() and (folder / "report.json").is_file()]


def fixed_and_broken(arm: dict) -> tuple[int, int] | None:
    """An arm's held-out answers fixed and broken against the base student (None in older reports)."""
    return (arm["fixed_vs_base"], arm["broken_vs_base"]) if "fixed_vs_base" in arm else None


def as_text(pair: tuple[int, int] | None) -> str:
    return "-" if pair is None else f"{pair[0]} / {pair[1]}"


def sign_flip_p(gaps: list[float]) -> float:
    """Two-sided exact p of the mean gap under random signs (the replicates' arms exchangeable)."""
    observed = abs(statistics.mean(gaps))
    flips = [abs(statistics.mean(g * s for g, s in zip(gaps, signs)))
             for signs in itertools.product((1, -1), repeat=len(gaps))]
    return sum(f >= observed - 1e-12 for f in flips) / len(flips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--dataset", default="obqa")
    parser.add_argument("--corrections", type=int, default=20)
    args = parser.parse_args()
    folders = replicate_folders(args.root, args.dataset, args.corrections)
    if not folders:
        raise SystemExit(f"no finished replicate under {args.root}. Fix: run benchmarks/loop_experiment.py first")
    print("| training seed | corrections % | control % | corrections - control, points "
          "| only corrections / only control, McNemar p | fixed / broken vs base, corrections | control "
          "| corrected questions right after retraining |")
    print("|---:|---:|---:|---:|---|---|---|---:|")
    gaps, controls, treated, changes = [], {}, {}, []
    for seed, folder in folders:
        arm = right_answers(folder / "round-1.corrections.heldout.jsonl")
        control = right_answers(folder / "round-1.control.heldout.jsonl")
        controls[seed], treated[seed] = control, arm
        test = compare_paired(arm, control)
        a, c = 100 * sum(arm.values()) / len(arm), 100 * sum(control.values()) / len(control)
        gaps.append(a - c)
        report = json.loads((folder / "report.json").read_text())
        first_round = report["rounds"][0]
        learned = first_round.get("corrected_right_on_pool", "-")
        changes.append(fixed_and_broken(first_round.get("corrections", {})))
        print(f"| {seed} | {a:.1f} | {c:.1f} | {a - c:+.1f} | {test.only_first} / {test.only_second}, "
              f"p = {test.p_value:.3g} | {as_text(changes[-1])} | "
              f"{as_text(fixed_and_broken(first_round.get('control', {})))} | "
              f"{learned} of {first_round['corrections_so_far']} |")
    noise = [100 * (sum(controls[x].values()) - sum(controls[y].values())) / len(controls[x])
             for x, y in itertools.combinations(controls, 2)]
    print()
    print(f"- mean gap corrections - control over {len(gaps)} replicates: {statistics.mean(gaps):+.2f} points "
          f"(SD {statistics.stdev(gaps) if len(gaps) > 1 else 0:.2f}); sign-flip p = {sign_flip_p(gaps):.3g}")
    per_question = [sum(treated[seed][q] for seed in treated) - sum(controls[seed][q] for seed in controls)
                     for q in controls[folders[0][0]]]
    if any(per_question):
        from scipy.stats import wilcoxon

        test = wilcoxon(per_question, zero_method="wilcox")
        ahead = sum(d > 0 for d in per_question)
        behind = sum(d < 0 for d in per_question)
        print(f"- pooled over the {len(per_question)} held-out questions: corrections ahead on {ahead}, behind on "
              f"{behind}; Wilcoxon signed-rank p = {test.pvalue:.3g}")
    counted = [pair for pair in changes if pair is not None]
    if counted:
        met = sum(3 * broken <= fixed for fixed, broken in counted)
        print(f"- corrections arm against the base: broken <= fixed / 3 in {met} of {len(counted)} replicates; "
              f"{sum(f for f, _ in counted)} fixed / {sum(b for _, b in counted)} broken in all")
    if noise:
        print(f"- control vs control (training seed alone): gaps {', '.join(f'{g:+.1f}' for g in noise)} points; "
              f"largest |gap| {max(map(abs, noise)):.1f}")


if __name__ == "__main__":
    main()

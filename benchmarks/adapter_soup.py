"""Average LoRA student adapters into one ("model soup", Wortsman et al. 2022), exactly.

Two adapters trained from the same base disagree on many questions (run-to-run spread of about 3
points, docs/results.md). Averaging their weight changes is a cheap way to keep what they share:
the soup's change to each weight is sum_i w_i * B_i A_i, written as one LoRA adapter whose rank is the
sum of theirs (peft's `add_weighted_adapter(..., combination_type="cat")`, no approximation). It is
saved in float16 so two r16 adapters fit in the size of one float32 adapter.

    python benchmarks/adapter_soup.py demo/student runs/other-adapter --out runs/soup
    python -m kard evaluate ... --student runs/soup

The script checks its own work: for every adapted weight it compares the soup's merged change with the
weighted sum of the inputs' merged changes and prints the largest difference.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import torch
from peft import PeftModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside
from kard.model_source import adapter_base, adapter_folder, save_adapter  # noqa: E402
from kard.student import Student  # noqa: E402
from kard.training import TRAINING_FILE  # noqa: E402

ADAPTER_WEIGHTS = "adapter_model.safetensors"

log = logging.getLogger("adapter_soup")
SOUP = "default"  # peft saves the adapter named "default" at the folder's top


def merged_deltas(model: PeftModel, adapter: str) -> dict[str, torch.Tensor]:
    """Each LoRA layer's weight change B @ A * scaling for `adapter`."""
    deltas = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {}):
            deltas[name] = module.get_delta_weight(adapter).detach().clone()
    return deltas


def make_soup(adapters: list[Path], weights: list[float]) -> tuple[PeftModel, float]:
    """The base model carrying the soup as its active adapter, and the check's largest error."""
    bases = {adapter_base(path) for path in adapters}
    if len(bases) != 1:
        raise SystemExit(f"the adapters were trained on different bases: {sorted(bases)}. Fix: soup adapters of one base")
    base = Student.load(bases.pop()).model
    names = [f"part{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapters[1:]):
        model.load_adapter(str(path), adapter_name=name)
    expected: dict[str, torch.Tensor] = {}
    for name, weight in zip(names, weights):
        for layer, delta in merged_deltas(model, name).items():
            expected[layer] = expected.get(layer, 0) + weight * delta
    model.add_weighted_adapter(names, weights, SOUP, combination_type="cat")
    model.set_adapter(SOUP)
    for name in names:
        model.delete_adapter(name)
    souped = merged_deltas(model, SOUP)
    error = max((souped[layer] - delta).abs().max().item() for layer, delta in expected.items())
    return model, error


def save_soup(model: PeftModel, out: Path, adapters: list[Path], weights: list[float], base: str) -> None:
    """The soup's adapter files, kard_soup.json (what went in) and each ingredient's training record."""
    save_adapter(model.half(), out, base)
    record = {"soup_of": [{"folder": str(path), "sha256": sha256(path / ADAPTER_WEIGHTS)} for path in adapters],
              "weights": weights, "combination": "cat", "stored_dtype": "float16"}
    (out / "kard_soup.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for path in adapters:  # where each came from: its training settings and losses, when it has them
        for name in (TRAINING_FILE, "losses.jsonl"):
            if (path / name).is_file():
                (out / "ingredients" / path.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path / name, out / "ingredients" / path.name / name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("adapters", nargs="+", type=Path, help="LoRA adapter folders of one base student")
    parser.add_argument("--weights", nargs="+", type=float, help="one weight each (default: equal, summing to 1)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in args.adapters:
        if adapter_folder(path) is None:
            raise SystemExit(f"{path} is not a LoRA adapter folder (adapter_config.json). Fix: name adapter folders")
    weights = args.weights or [1 / len(args.adapters)] * len(args.adapters)
    if len(weights) != len(args.adapters):
        raise SystemExit(f"{len(weights)} weights for {len(args.adapters)} adapters. Fix: give one weight each")
    model, error = make_soup(args.adapters, weights)
    log.info("soup of %d adapters, weights %s: largest difference from the weighted sum of their changes %.2e",
             len(args.adapters), weights, error)
    save_soup(model, args.out, args.adapters, weights, adapter_base(args.adapters[0]))
    size_mb = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file()) / 1e6
    log.info("wrote %s (%.1f MB)", args.out, size_mb)


if __name__ == "__main__":
    main()

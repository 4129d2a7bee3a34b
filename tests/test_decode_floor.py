"""benchmarks/decode_floor.py: the per-token floor of a decoding step, run on a tiny decoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.tiny_models import save_tiny_decoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.filterwarnings("ignore")
def test_the_floor_reads_every_weight_matrix_once_in_each_format(tmp_path: Path) -> None:
    student = save_tiny_decoder(tmp_path / "tiny", max_positions=2048)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decode_floor.py"), "--student", str(student),
                           "--repeats", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "ms per token" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| transformers float32, a real step (KV cache of 300 tokens)",
        "| float32 weights, matrix-vector products only",
        "| bfloat16 weights, matrix-vector products only",
        "| int8 weights (torch dynamic int8), products only"]
    model = AutoModelForCausalLM.from_pretrained(student)  # every linear layer, the output layer included
    linear = [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert f"{len(linear)} weight matrices, {sum(w.numel() for w in linear):,} weights read per token" in done.stdout

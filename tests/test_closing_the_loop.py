"""benchmarks/closing_the_loop.py: --help names both subcommands; a rerun saves no unchanged correction again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import importlib.util

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("closing_the_loop", ROOT / "benchmarks" / "closing_the_loop.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_help_lists_the_subcommands():
    shown = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "closing_the_loop.py"), "--help"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "{base,prepare}" in shown.stdout
    assert "closing_the_loop.py base --help" in shown.stdout and "closing_the_loop.py prepare --help" in shown.stdout


def test_a_saved_correction_is_not_saved_again():
    latest = SimpleNamespace(rationale="FLAN's rationale.", answer="A")
    assert script.unchanged(latest, "FLAN's rationale.", "A")
    assert not script.unchanged(None, "FLAN's rationale.", "A")  # never saved
    assert not script.unchanged(latest, "FLAN's rationale.", "B")  # the gold answer differs: a new revision
    assert not script.unchanged(SimpleNamespace(rationale="a curator's edit", answer="A"), "FLAN's rationale.", "A")

"""What a Hugging Face Space does, for real: a new virtual environment, `pip install -r requirements.txt`
and nothing else, then the default stack answers a demo question offline and `python app.py` serves
the page.

Installing needs the packages, and tests never touch the network, so the install reads a local
wheelhouse (`pip install --no-index --find-links`): build it once, online, with

    pip wheel -r requirements.txt -w wheelhouse
    KARD_WHEELHOUSE=wheelhouse python -m pytest tests/test_space_install.py

Without KARD_WHEELHOUSE the test is skipped with that reason. It takes about 3 minutes (install,
the first start's conversions, one answer)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_fixtures import free_port

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = os.environ.get("KARD_WHEELHOUSE", "")

pytestmark = [
    pytest.mark.skipif(not WHEELHOUSE, reason="set KARD_WHEELHOUSE to a folder made by "
                       "`pip wheel -r requirements.txt -w DIR` (online, once); the install then runs offline"),
    pytest.mark.timeout(900),
]


def offline_env(cache: Path) -> dict[str, str]:
    """A Space's environment with the network closed: no index, no hub, a cache of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "KARD_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(Path(WHEELHOUSE).resolve()), PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", KARD_CACHE=str(cache))
    return env


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(python of the fresh venv, its environment) after `pip install -r requirements.txt` alone."""
    folder = tmp_path_factory.mktemp("space")
    env = offline_env(folder / "cache")
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=ROOT,
                             env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    return python, env


def test_requirements_alone_give_the_cpu_torch_build(space):
    python, env = space
    probe = subprocess.run([str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
                           env=env, capture_output=True, text=True, check=True)
    version, cuda = probe.stdout.split()
    assert version.startswith("2.13.0") and cuda == "None", probe.stdout


def test_requirements_alone_answer_a_demo_question_offline(space):
    python, env = space
    asked = subprocess.run([str(python), "-m", "kard", "ask", "--sample", "demo-q-med-01", "--max-new-tokens", "48"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "LoRA adapter" in asked.stderr, asked.stderr[-1500:]  # the shipped distilled student, not the bare base
    assert re.search(r"Student \(.*ctranslate2", asked.stdout), asked.stdout[:1500]
    assert "rerank #1" in asked.stdout, asked.stdout[:1500]
    assert re.search(r"^Answer: [ABCD]\b", asked.stdout, re.MULTILINE), asked.stdout[-800:]


def test_requirements_alone_serve_the_app(space, tmp_path):
    python, env = space
    port = free_port()
    env = dict(env, GRADIO_SERVER_PORT=str(port), KARD_ANNOTATIONS_DB=str(tmp_path / "annotations.db"))
    with open(tmp_path / "app.log", "w") as log:
        app = subprocess.Popen([str(python), "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            page = wait_for_page(f"http://127.0.0.1:{port}/", app, seconds=300)
        finally:
            app.terminate()
            app.wait(timeout=30)
    assert "KARD Studio" in page, (tmp_path / "app.log").read_text()[-2000:]


def wait_for_page(url: str, app: subprocess.Popen, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert app.poll() is None, f"app.py exited with {app.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(1)
    raise AssertionError(f"no page at {url} after {seconds} s")

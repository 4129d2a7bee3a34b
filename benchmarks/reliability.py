"""Reliability suite, run by hand: concurrent writers, kill -9 mid-burst, concurrent asks against a
bounded queue, and a catalogue of bad inputs with the message each gets. Prints markdown tables.

    python benchmarks/reliability.py [--writers 20 --saves 10] [--asks 20 --queue 8] [--skip-asks]

1. N threads x M saves into one store file: exactly N x M revisions, `PRAGMA integrity_check` ok.
2. A child process saves in a loop and prints each revision the store acknowledged; it is killed with
   SIGKILL mid-burst: the file must pass integrity_check and hold every acknowledged revision.
3. The app (default stack, curator mode, KARD_QUEUE_SIZE) is started and asked N questions at once
   through gradio_client: answered / refused as "queue full", p50 / p95 seconds of the answered,
   and the largest queue position the clients were shown.
4. Bad inputs (command line, environment, files, the app's API): exit code or outcome and the first
   line of the message.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kard.annotations import AnnotationStore, Correction, PassageRecord  # noqa: E402

USER, PASSWORD = "curator", "reliability-check"


def correction(i: int, curator: str = "alice") -> Correction:
    return Correction(
        item_id=f"demo:q{i % 7}", question_id=f"q{i % 7}", question="Which vitamin deficiency causes scurvy?",
        options={"A": "Vitamin C", "B": "Vitamin D"}, rationale=f"Scurvy comes from too little vitamin C ({i}).",
        answer="A", gold_answer="A", dataset="demo",
        passages=(PassageRecord("p1", "Scurvy", "Scurvy is vitamin C deficiency.", 1, 3.2, 1, 0.4, True, "relevant"),),
        student_model="student", reranker_model=None, teacher_model=None, prompt_version="kard-v1",
        decoding={"samples": 1}, student_rationale="Rickets.", student_answer="B", teacher_rationale="",
        teacher_answer=None, original_rationale="", original_source="", rating=4, tags=(), note=f"save {i}",
        curator=curator,
    )


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def revisions(path: Path) -> int:
    return AnnotationStore(path).count()


# ---------------------------------------------------------------- 1 and 2: the store


def concurrent_writers(folder: Path, writers: int, saves: int) -> str:
    path = folder / "writers.db"
    AnnotationStore(path)  # create the schema once
    errors: list[str] = []

    def write(worker: int) -> None:
        store = AnnotationStore(path)
        for i in range(saves):
            try:
                store.save(correction(worker * saves + i, curator=f"w{worker}"))
            except Exception as error:  # noqa: BLE001 - counted and shown
                errors.append(f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return (f"| {writers} threads x {saves} saves | {revisions(path)} revisions (expected {writers * saves}), "
            f"{len(errors)} errors, integrity_check {integrity(path)}, {seconds:.1f} s |")


BURST = """
import sys
sys.path.insert(0, {root!r})
from benchmarks.reliability import correction
from kard.annotations import AnnotationStore
store = AnnotationStore({path!r})
i = 0
while True:
    revision = store.save(correction(i))
    print(revision.item_id, revision.revision, flush=True)
    i += 1
"""


def kill_mid_burst(folder: Path, after_s: float = 1.5) -> str:
    path = folder / "burst.db"
    child = subprocess.Popen([sys.executable, "-c", BURST.format(root=str(ROOT), path=str(path))],
                             stdout=subprocess.PIPE, text=True)
    acknowledged: list[tuple[str, int]] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(
        (line.split()[0], int(line.split()[1])) for line in child.stdout if line.strip()))
    reader.start()
    time.sleep(after_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join()
    store = AnnotationStore(path)
    stored = {(r.item_id, r.revision) for item in {i for i, _ in acknowledged} for r in store.history(item)}
    missing = [pair for pair in acknowledged if pair not in stored]
    return (f"| kill -9 after {after_s} s of saving | {len(acknowledged)} acknowledged, {len(missing)} missing, "
            f"integrity_check {integrity(path)} |")


# ---------------------------------------------------------------- 3: concurrent asks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(folder: Path, queue: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "KARD_QUEUE_SIZE": str(queue), "KARD_MODE": "curator",
           "KARD_CURATOR_USER": USER, "KARD_CURATOR_PASSWORD": PASSWORD,
           "KARD_ANNOTATIONS_DB": str(folder / "app.db"), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return app, url
        except OSError:
            time.sleep(1)
    app.kill()
    raise RuntimeError("the app did not start in 300 s")


def concurrent_asks(url: str, asks: int, queue: int) -> str:
    from gradio_client import Client

    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    client.predict("warm up: which gas do plants absorb?", "A) oxygen B) carbon dioxide", None, api_name="/ask")
    questions = [f"Question {i}: which gas do plants absorb?" for i in range(asks)]
    ranks: list[int] = []

    def ask(text: str) -> tuple[str, float]:
        started = time.perf_counter()
        job = client.submit(text, "A) oxygen B) carbon dioxide", None, api_name="/ask")
        while not job.done():
            status = job.status()
            if getattr(status, "rank", None) is not None:
                ranks.append(status.rank)
            time.sleep(0.2)
        try:
            job.result()
            return "answered", time.perf_counter() - started
        except Exception as error:  # noqa: BLE001 - the client's error for a full queue
            return str(error).splitlines()[0][:80], time.perf_counter() - started

    with ThreadPoolExecutor(asks) as pool:
        outcomes = list(pool.map(ask, questions))
    times = sorted(s for o, s in outcomes if o == "answered")
    refused = [o for o, _ in outcomes if o != "answered"]
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] if times else float("nan")
    return (f"| {asks} asks at once, queue bound {queue} | answered {len(times)}, refused {len(refused)} "
            f"({'; '.join(sorted(set(refused)))}) | p50 {statistics.median(times) if times else float('nan'):.1f} s, "
            f"p95 {p95:.1f} s | largest queue position shown {max(ranks) if ranks else '-'} |")


# ---------------------------------------------------------------- 4: bad inputs


def write_files(folder: Path) -> dict[str, Path]:
    files = {
        "malformed.jsonl": '{"id": "p1", "text": "fine"}\n{"id": "p2", "text": \n',
        "empty.jsonl": "",
        "questions_bad.jsonl": '{"question": "no options or answer"}\n',
        "notsqlite.db": "this is not a database\n",
        "existing_file": "x\n",
        "good.jsonl": '{"id": "p1", "text": "Plants absorb carbon dioxide."}\n{"id": "p2", "text": "Fish swim."}\n',
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    paths["fake.gguf"] = folder / "fake.gguf"
    paths["fake.gguf"].write_bytes(os.urandom(4096))
    adapter = folder / "lfs-adapter"  # a clone without `git lfs pull`: the weights are a pointer file
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text((ROOT / "demo/student/adapter_config.json").read_text())
    (adapter / "adapter_model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 2736000\n")
    paths["lfs-adapter"] = adapter
    rounds = folder / "rounds"
    rounds.mkdir()
    (rounds / "current.json").write_text("{bad")
    paths["damaged-rounds"] = rounds
    (folder / "a-folder").mkdir()
    paths["a-folder"] = folder / "a-folder"
    return paths


class WebPageTeacher:
    """An HTTP server on 127.0.0.1 that answers every request 200 with a web page: a wrong --base-url."""

    def __enter__(self) -> str:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Page(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b"<html><body>Welcome to nginx!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()


def cli_cases(f: dict[str, Path], folder: Path, teacher_url: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """(what, argv after `python`, extra environment); `teacher_url`: a server that answers with a web page."""
    k = ["-m", "kard"]
    q = ["ask", "Which gas do plants absorb?", "--options", "A) oxygen B) carbon dioxide"]
    none = {}
    return [
        ("ask: empty question", k + ["ask", ""], none),
        ("ask: 5,000-character question", k + ["ask", "why " * 1250], none),
        ("ask: one option", k + ["ask", "Q?", "--options", "A) only"], none),
        ("ask: a letter used twice", k + ["ask", "Q?", "--options", "A) x A) y"], none),
        ("ask: unknown demo id", k + ["ask", "--sample", "nope"], none),
        ("ask: missing student folder", k + q + ["--student", str(folder / "no-student")], none),
        ("ask: missing knowledge file", k + q + ["--knowledge", str(folder / "no.jsonl")], none),
        ("ask: malformed knowledge file", k + q + ["--knowledge", str(f["malformed.jsonl"])], none),
        ("ask: missing reranker folder", k + q + ["--reranker", str(folder / "no-reranker")], none),
        ("ask: unknown engine", k + q + ["--engine", "vllm"], none),
        ("ask: k = 0", k + q + ["--k", "0"], none),
        ("ask: max-new-tokens 0", k + q + ["--max-new-tokens", "0"], none),
        ("index: missing passages file", k + ["index", "--passages", str(folder / "no.jsonl"), "--out", str(folder / "i1")], none),
        ("index: /dev/null", k + ["index", "--passages", "/dev/null", "--out", str(folder / "i2")], none),
        ("index: malformed JSONL line", k + ["index", "--passages", str(f["malformed.jsonl"]), "--out", str(folder / "i3")], none),
        ("index: empty file", k + ["index", "--passages", str(f["empty.jsonl"]), "--out", str(folder / "i4")], none),
        ("index: --out is a file", k + ["index", "--passages", str(f["good.jsonl"]), "--out", str(f["existing_file"])], none),
        ("index: --out unwritable", k + ["index", "--passages", str(f["good.jsonl"]), "--out", "/proc/kard-index"], none),
        ("search: missing index", k + ["search", "--index", str(folder / "no-kb"), "plants"], none),
        ("evaluate: missing questions file", k + ["evaluate", "--dataset", "obqa", "--questions", str(folder / "no.jsonl"),
                                                  "--out", str(folder / "e1")], none),
        ("evaluate: questions without options", k + ["evaluate", "--dataset", "medqa", "--questions",
                                                     str(f["questions_bad.jsonl"]), "--out", str(folder / "e2")], none),
        ("evaluate: missing student", k + ["evaluate", "--dataset", "demo", "--student", str(folder / "no-student"), "--out", str(folder / "e3")], none),
        ("evaluate: batch size 0", k + ["evaluate", "--dataset", "demo", "--batch-size", "0", "--out", str(folder / "e4")], none),
        ("teach: no key, no server", k + ["teach", "--dataset", "demo", "--out", str(folder / "t.jsonl")],
         {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}),
        ("teach: unreachable server", k + ["teach", "--dataset", "demo", "--base-url", "http://127.0.0.1:9/v1", "--out", str(folder / "t2.jsonl")],
         {"OPENAI_API_KEY": ""}),
        ("import-rationales: missing file", k + ["import-rationales", "--kind", "medqa-gpt4", "--path", str(folder / "no.jsonl"),
                                                 "--questions", str(ROOT / "demo/questions.jsonl"), "--out", str(folder / "r.jsonl")], none),
        ("train-student: missing examples", k + ["train-student", "--examples", str(folder / "no.jsonl"), "--out", str(folder / "s")], none),
        ("train-student: malformed examples", k + ["train-student", "--examples", str(f["malformed.jsonl"]), "--out", str(folder / "s2")], none),
        ("export: not a database", k + ["export", "--db", str(f["notsqlite.db"]), "--out", str(folder / "x")], none),
        ("ask: blank question", k + ["ask", "   "], none),
        ("ask: samples 0", k + q + ["--samples", "0"], none),
        ("ask: adapter weights are a Git LFS pointer", k + q + ["--student", str(f["lfs-adapter"])], none),
        ("prepare-models: a file that is not GGUF", k + ["prepare-models", "--student", str(f["fake.gguf"])], none),
        ("index: BM25 b = 5", k + ["index", "--passages", str(f["good.jsonl"]), "--out", str(folder / "i5"), "--b", "5"], none),
        ("evaluate: --out is a file", k + ["evaluate", "--dataset", "demo", "--out", str(f["existing_file"])], none),
        ("evaluate: temperature -1", k + ["evaluate", "--dataset", "demo", "--samples", "2", "--temperature", "-1",
                                          "--out", str(folder / "e5")], none),
        ("teach: --out is a folder", k + ["teach", "--dataset", "demo", "--base-url", teacher_url, "--out",
                                          str(f["a-folder"])], {"OPENAI_API_KEY": "sk-reliability"}),
        ("teach: server answers with a web page", k + ["teach", "--dataset", "demo", "--limit", "2", "--base-url",
                                                        teacher_url, "--out", str(folder / "t3.jsonl"), "--cache",
                                                        str(folder / "teacher-cache.db")], {"OPENAI_API_KEY": "sk-reliability"}),
        ("export: missing database", k + ["export", "--db", str(folder / "no.db"), "--out", str(folder / "x2")], none),
        ("export: --db is a folder", k + ["export", "--db", str(f["a-folder"]), "--out", str(folder / "x3")], none),
        ("retrain: missing database", k + ["retrain", "--root", str(folder / "loop"), "--db", str(folder / "no.db")], none),
        ("retrain: damaged current.json", k + ["retrain", "--root", str(f["damaged-rounds"]), "--status"], none),
        ("retrain: --set max_steps=abc", k + ["retrain", "--root", str(folder / "loop2"), "--examples", str(f["good.jsonl"]),
                                              "--set", "max_steps=abc"], none),
        ("app: KARD_MODE=bad", ["app.py"], {"KARD_MODE": "bad"}),
        ("app: GRADIO_SERVER_PORT=abc", ["app.py"], {"GRADIO_SERVER_PORT": "abc"}),
        ("app: GRADIO_SERVER_PORT=70000", ["app.py"], {"GRADIO_SERVER_PORT": "70000"}),
        ("app: annotations file is not SQLite", ["app.py"], {"KARD_ANNOTATIONS_DB": str(f["notsqlite.db"])}),
        ("app: KARD_STUDENT missing", ["app.py"], {"KARD_STUDENT": str(folder / "no-student")}),
        ("app: KARD_KNOWLEDGE missing", ["app.py"], {"KARD_KNOWLEDGE": str(folder / "no.jsonl")}),
        ("app: KARD_RERANKER missing", ["app.py"], {"KARD_RERANKER": str(folder / "no-reranker")}),
        ("app: KARD_ENGINE=vllm", ["app.py"], {"KARD_ENGINE": "vllm"}),
        ("app: KARD_QUEUE_SIZE=0", ["app.py"], {"KARD_QUEUE_SIZE": "0"}),
        ("app: KARD_QUESTIONS missing", ["app.py"], {"KARD_QUESTIONS": str(folder / "no.jsonl")}),
        ("app: curator mode without a login", ["app.py"], {"KARD_MODE": "curator", "KARD_CURATOR_USER": "",
                                                           "KARD_CURATOR_PASSWORD": ""}),
    ]


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and "Warning" not in line
             and not line.startswith(("  warnings.warn", "Loading weights"))]
    return (lines[-1] if lines else "(nothing)").replace("|", "\\|")[:220]


def run_cli(cases, folder: Path) -> list[str]:
    rows = []
    for what, argv, extra in cases:
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
               "KARD_ANNOTATIONS_DB": str(folder / "cli.db"), **extra}
        env = {k: v for k, v in env.items() if v != ""}
        try:
            done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            outcome, text = f"exit {done.returncode}", done.stderr or done.stdout
        except subprocess.TimeoutExpired:
            outcome, text = "timed out (120 s)", ""
        traceback = "Traceback" in text
        leaked = "sk-reliability" in done.stdout + done.stderr if outcome.startswith("exit") else False
        flags = (" TRACEBACK" if traceback else "") + (" KEY LEAKED" if leaked else "")
        rows.append(f"| {what} | {outcome}{flags} | {first_line(text)} |")
    return rows


def api_cases(url: str) -> list[str]:
    from gradio_client import Client

    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    _, _, _, item, _ = client.predict("Which gas do plants absorb?", "A) oxygen B) carbon dioxide", None,
                                      api_name="/ask")

    def ask(text: str, options: str) -> str:
        return client.predict(text, options, None, api_name="/ask")[2]

    def save(sent, rationale="Plants take in carbon dioxide. Answer: B", answer="B", note="") -> str:
        return client.predict(sent, rationale, answer, 4, [], None, None, None, None, None, note, False, "", "",
                              api_name="/save")[0]

    forged = {**item, "question": {**item["question"], "text": "Something else?"}}
    cases = [
        ("/ask: empty question", lambda: ask("", "")),
        ("/ask: 5,000-character question", lambda: ask("why " * 1250, "")),
        ("/ask: one option", lambda: ask("Q?", "A) only")),
        ("/ask: option letters beyond the alphabet", lambda: ask("Q?", "\n".join(f"option {i}" for i in range(30)))),
        ("/save: no item", lambda: save(None)),
        ("/save: forged item", lambda: save(forged)),
        ("/save: malformed item", lambda: save({"question": {}})),
        ("/save: empty rationale", lambda: save(item, rationale="   ")),
        ("/save: letter not among the options", lambda: save(item, answer="Q")),
        ("/save: 1 MB note", lambda: save(item, note="x" * 1_000_000)),
    ]
    rows = []
    for what, call in cases:
        try:
            text = call()
        except Exception as error:  # noqa: BLE001 - the client's own refusal
            text = f"client error: {error}"
        plain = " ".join(str(text).replace("<", " <").split())
        import re

        plain = re.sub(r"<[^>]+>", "", plain).strip()
        rows.append(f"| {what} | app stays up | {plain[:220].replace('|', '/')} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--asks", type=int, default=20)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--skip-asks", action="store_true", help="skip the parts that start the app (3, API cases)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        print("| store | result |\n|---|---|")
        print(concurrent_writers(folder, args.writers, args.saves))
        print(kill_mid_burst(folder))
        with WebPageTeacher() as teacher_url:
            rows = run_cli(cli_cases(write_files(folder), folder, teacher_url), folder)
        if not args.skip_asks:
            app, url = start_app(folder, args.queue)
            try:
                print("\n| load | outcome | latency | queue |\n|---|---|---|---|")
                print(concurrent_asks(url, args.asks, args.queue))
                rows += api_cases(url)
                app_alive = app.poll() is None
            finally:
                app.kill()
            print(f"\nThe app was {'still up' if app_alive else 'DOWN'} after the API cases.")
        print(f"\n{len(rows)} bad inputs:\n\n| input | outcome | message (last line) |\n|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()

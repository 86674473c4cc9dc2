"""Clean stops: SIGINT/SIGTERM stop `watch`, `index` and `serve` promptly at any point (inside one large
note's embedding, a model export, an answer waiting on its model), no child outlives its parent (even a
parent killed with SIGKILL), and the index is consistent afterwards, the next run completing it.

Every signal is sent only once a readiness condition proves the process is in the state under test
(a marker line, the export child's existence, onnxruntime loaded, the model holding a request). The
deadline is 3 s, generous for a loaded 2-core machine; unloaded these stops take well under a second."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import PROJECT, HashEmbedder, make_kb
from fake_llm import FakeLLM, Reply
from helpers import free_port, snapshot, wait_for
from pai_kb.locking import writer_lock

TESTS = Path(__file__).parent
DEADLINE_S = 3.0
PAI = [sys.executable, "-m", "pai_kb"]

# A watcher whose embedder says when it is called and takes 20 ms a text, like a slow real model.
WATCH_WORKER = r"""
import signal, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from conftest import HashEmbedder
from pai_kb.config import load_config
from pai_kb.kb import KnowledgeBase
from pai_kb.watch import Watcher, WatchSettings

class Marked(HashEmbedder):
    def embed(self, texts):
        print(f"embedding {len(texts)}", flush=True)
        time.sleep(0.02 * len(texts))
        return super().embed(texts)

config = load_config({"vault": Path(sys.argv[1]), "inbox": Path(sys.argv[2]), "index_dir": Path(sys.argv[3])}, env={})
watcher = Watcher(KnowledgeBase(config, embedder=Marked()), WatchSettings(debounce_s=0.1, max_delay_s=0.5))
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: watcher.interrupt())
watcher.run()
print("stopped", flush=True)
"""

# `serve` itself (server.serve, its signal handling and uvicorn), on an index built with the test embedder.
SERVE_WORKER = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from conftest import HashEmbedder
from pai_kb.config import load_config
from pai_kb.kb import KnowledgeBase
from pai_kb.server import listen, serve

config = load_config({"vault": Path(sys.argv[1]), "inbox": Path(sys.argv[2]), "index_dir": Path(sys.argv[3])}, env={})
config = config.replace(llm_base_url=sys.argv[5], answer_min_similarity=-1.0)
serve(KnowledgeBase(config, embedder=HashEmbedder()), listen("127.0.0.1", int(sys.argv[6]), None), None)
"""


def exit_time(proc: subprocess.Popen, sig: int) -> float:
    """Seconds from sending `sig` to the process having exited (fails past the deadline, killing it)."""
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {DEADLINE_S} s after signal {sig}")
    return time.monotonic() - started


class Lines:
    """A process's stdout lines, read as they come, on a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(line.rstrip("\n") for line in stream), daemon=True).start()


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a reaper."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def large_note(sections: int) -> str:
    """A note of about `sections` chunks: one section of distinct words each."""
    return "# Large\n\n" + "\n\n".join(
        f"## Part {i}\n\n" + " ".join(f"word{i}x{j} filler{j % 17}" for j in range(60)) for i in range(sections))


@pytest.fixture
def roots(tmp_path):
    (tmp_path / "vault").mkdir()
    (tmp_path / "inbox").mkdir()
    return tmp_path / "vault", tmp_path / "inbox", tmp_path / "index"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_stops_inside_one_large_note(roots, tmp_path, sig):
    vault, inbox, index = roots
    (vault / "Large.md").write_text(large_note(300))
    proc = subprocess.Popen([sys.executable, "-c", WATCH_WORKER, str(vault), str(inbox), str(index), str(TESTS)],
                            stdout=subprocess.PIPE, text=True)
    out = Lines(proc.stdout)
    # The first call embeds the warm-up text; the second and later ones are the large note's slices.
    wait_for(lambda: len([l for l in out.lines if l.startswith("embedding")]) >= 3, what="inside the large note")
    print(f"\n[stops] watch inside a large note, {sig.name}: exited {exit_time(proc, sig):.2f} s after it")
    wait_for(lambda: "stopped" in out.lines, timeout=5, what="the worker's last line")
    assert proc.returncode == 0
    kb = make_kb(tmp_path, vault, HashEmbedder())
    assert "vault/Large.md" not in kb.manifest.file_states()  # nothing half-written
    report = kb.index()  # the lock is free and the next run completes it
    fresh = make_kb(tmp_path / "fresh", vault, HashEmbedder(), index_dir=tmp_path / "fresh-index")
    fresh.index()
    assert report.added == 1 and snapshot(kb) == snapshot(fresh) and len(snapshot(kb)) > 250


def test_index_sigterm_inside_one_large_note(roots, real_embedder):
    vault, inbox, index = roots
    (vault / "Large.md").write_text(large_note(200))
    # The model exported once for the session, so this run goes straight to embedding.
    real_embedder.embed(["exported and optimised before the copy"])
    shutil.copytree(real_embedder.onnx_path.parent, Path(os.environ["PAI_KB_CACHE_DIR"]) / "onnx", dirs_exist_ok=True)
    cmd = [*PAI, "--vault", str(vault), "--inbox", str(inbox), "--index", str(index), "index", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # onnxruntime is loaded on the first embedding call, which is the large note's; a second and a half
    # of CPU time later (the import and session take a fraction of that) the model is embedding it.
    wait_for(lambda: "onnxruntime" in Path(f"/proc/{proc.pid}/maps").read_text(), what="embedding started")
    loaded = cpu_seconds(proc.pid)
    wait_for(lambda: cpu_seconds(proc.pid) > loaded + 1.5, what="embedding under way")
    print(f"\n[stops] index inside a large note: exited {exit_time(proc, signal.SIGTERM):.2f} s after SIGTERM")
    stderr = proc.stderr.read()
    assert proc.returncode == 130 and "next `pai-kb index` finishes the rest" in stderr, stderr
    with writer_lock(index):  # released
        pass
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["added"] == 1 and report["chunks_embedded"] == report["chunks_total"] > 100


@pytest.mark.parametrize("command, sig", [("index", signal.SIGKILL), ("index", signal.SIGTERM),
                                          ("watch", signal.SIGTERM)], ids=["index-SIGKILL", "index-SIGTERM",
                                                                           "watch-SIGTERM"])
def test_no_export_child_outlives_its_parent(roots, command, sig):
    vault, inbox, index = roots
    shutil.copy(PROJECT / "vault" / "Coffee" / "Pour-over brewing.md", vault)
    fresh_cache = {**os.environ, "PAI_KB_CACHE_DIR": str(index.parent / "fresh-cache")}  # so the model is exported
    proc = subprocess.Popen([*PAI, "--vault", str(vault), "--inbox", str(inbox), "--index", str(index), command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=fresh_cache)
    try:
        wait_for(lambda: children(proc.pid), what="the export child started")
        child = children(proc.pid)[0]
        assert "export_onnx" in Path(f"/proc/{child}/cmdline").read_text()
        exit_time(proc, sig)
        wait_for(lambda: not alive(child), timeout=DEADLINE_S, what="the export child gone")
    finally:
        for pid in [proc.pid, *children(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with writer_lock(index):  # nothing holds the index
        pass


def test_serve_stops_while_answers_wait_on_the_model(roots, tmp_path):
    vault, inbox, index = roots
    shutil.copytree(PROJECT / "vault", vault, dirs_exist_ok=True)
    make_kb(tmp_path, vault, HashEmbedder()).index()
    gate = threading.Event()
    llm = FakeLLM(default=Reply("Three minutes [1].", hold=gate)).start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE_WORKER, str(vault), str(inbox), str(index), str(TESTS),
                             llm.url, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: (index / "server.json").exists(), what="the server announced")
        for body in ({"question": "how long to brew?"}, {"question": "how long to brew?", "stream": True}):
            threading.Thread(target=lambda b=body: _swallow(lambda: httpx.post(f"{url}/ask", json=b, timeout=30)),
                             daemon=True).start()
        wait_for(lambda: len(llm.requests) == 2, what="both answers waiting on the model")
        exit_time(proc, signal.SIGTERM)
        assert proc.returncode == 0, proc.stderr.read()
        assert not (index / "server.json").exists()
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
        llm.stop()


def _swallow(call) -> None:
    """A request cut short by the server stopping is expected here."""
    try:
        call()
    except httpx.HTTPError:
        pass

"""A running server follows the index another process writes, and a rebuild swaps in atomically:
a bounded loop of real HTTP searches during an incremental index and during `index --rebuild`, both in
separate processes, sees 0 errors and the new results within a second of the writer finishing."""

import statistics
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import PROJECT, HashEmbedder, make_kb
from helpers import start, to_schema_7
from pai_kb import generations
from pai_kb.kb import KnowledgeBase
from pai_kb.server import create_app

WORKER = PROJECT / "tests" / "crash_worker.py"


class Load:
    """Searches in a loop on a thread until stopped; records every status, latency and result."""

    def __init__(self, url: str, query: str) -> None:
        self.url, self.query = url, query
        self.statuses: list[int] = []
        self.latencies: list[float] = []
        self.seen: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                response = httpx.get(f"{self.url}/search", params={"q": self.query, "k": 5}, timeout=30)
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.seen.append((time.monotonic(), [r["path"] for r in response.json()["results"]]))
            except httpx.HTTPError:
                self.statuses.append(0)
            self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def first_seen(self, path: str) -> float | None:
        return next((t for t, paths in self.seen if path in paths), None)


def run_index(vault, index_dir, *more: str) -> float:
    """`index` in its own process, with the test embedder; returns when it finished (monotonic)."""
    out = subprocess.run([sys.executable, str(WORKER), str(vault), str(index_dir), "0.002", *more],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return time.monotonic()


@pytest.fixture
def served(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    kb.index()
    url, server = start(create_app(KnowledgeBase(kb.config, embedder=embedder)))
    yield kb, url
    server.should_exit = True


@pytest.mark.parametrize("rebuild", [False, True], ids=["incremental", "rebuild"])
def test_server_follows_another_process_without_an_error(served, vault, rebuild):
    kb, url = served
    (vault / "fresh.md").write_text("# Fresh\n\nThe aardvark note, new on disk.\n")
    with Load(url, "aardvark note") as load:
        deadline = time.monotonic() + 120
        while len(load.statuses) < 5:  # readiness: the loop is answering
            assert time.monotonic() < deadline, "the request loop never got an answer"
            time.sleep(0.01)
        finished = run_index(vault, kb.config.index_dir, *(["--rebuild"] if rebuild else []))
        deadline = time.monotonic() + 10
        while load.first_seen("fresh.md") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        deadline = time.monotonic() + 120
        while len(load.statuses) < 40:
            assert time.monotonic() < deadline, "the request loop stopped answering"
            time.sleep(0.01)
    errors = [s for s in load.statuses if s != 200]
    lag = load.first_seen("fresh.md") - finished
    print(f"\n[server under load, {'rebuild' if rebuild else 'incremental index'}] {len(load.statuses)} requests, "
          f"{len(errors)} errors, p50 {statistics.median(load.latencies) * 1000:.0f} ms, "
          f"p95 {statistics.quantiles(load.latencies, n=20)[-1] * 1000:.0f} ms, new note seen {lag:+.2f} s from the writer's exit")
    assert errors == [] and lag < 1.0
    assert load.seen[-1][1][0] == "fresh.md"


def test_a_rebuild_builds_beside_and_switches(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    kb.index()
    first = kb.generation
    before = {(h.chunk.path, h.chunk.text) for h in kb.search("coffee", k=5, mode="keyword")}
    kb.index(rebuild=True)
    assert kb.generation != first and generations.current(kb.config.index_dir) == kb.generation
    assert {(h.chunk.path, h.chunk.text) for h in kb.search("coffee", k=5, mode="keyword")} == before
    kb.index(rebuild=True)
    assert not first.exists()  # generations older than the previous one are removed


def test_a_killed_rebuild_leaves_the_current_index_whole(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    kb.index()
    current = kb.generation
    proc = subprocess.Popen([sys.executable, str(WORKER), str(vault), str(kb.config.index_dir), "0.05", "--rebuild"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = generations.following(kb.config.index_dir)
    deadline = time.monotonic() + 60
    while not (partial / "manifest.sqlite3").exists():  # readiness: the new generation is being built
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    reader = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    assert reader.generation == current and reader.search("espresso", k=1, mode="keyword")
    reader.index(rebuild=True)
    assert reader.generation not in (current, partial) and not partial.exists()


def test_a_model_change_builds_beside_and_a_stopped_build_resumes(tmp_path, vault, embedder):
    make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox").index()
    current = generations.current(tmp_path / "index")
    other = HashEmbedder()
    other.model_id = "another-model"
    kb = KnowledgeBase(make_kb(tmp_path, vault, other, inbox=vault / "_no_inbox").config, other, query_encoder=embedder)
    with kb.writer() as writer:  # as a watcher told to stop
        stopped = writer.sync(stop=lambda: len(other.embedded) > 0, batch_chunks=2)
    assert stopped.chunks_embedded > 0
    assert generations.current(tmp_path / "index") == current and kb.search("espresso", k=1, mode="keyword")
    done = kb.index()
    assert generations.current(tmp_path / "index") == current.parent / "gen-2"  # the same build, resumed
    _, chunks = make_kb(tmp_path, vault, other, inbox=vault / "_no_inbox").manifest.counts()
    assert done.chunks_embedded + stopped.chunks_embedded == chunks > stopped.chunks_embedded  # nothing twice


def test_searches_use_the_model_the_current_generation_was_built_with(tmp_path, vault, real_embedder):
    kb = make_kb(tmp_path, vault, real_embedder, inbox=vault / "_no_inbox")
    kb.index()
    want = [h.chunk.id for h in kb.search("VLAN for IoT devices", k=3, mode="dense")]
    renamed = kb.config.replace(model=str(real_embedder.path))  # the same weights under another name
    reader = KnowledgeBase(renamed)
    assert reader.embedder.model_id != reader.manifest.get_meta("model")
    assert [h.chunk.id for h in reader.search("VLAN for IoT devices", k=3, mode="dense")] == want
    assert reader.query_embedder.model_id == "all-MiniLM-L6-v2+int8"  # the generation's, the default precision


def test_a_generation_of_the_previous_schema_answers_by_meaning_until_its_successor_is_built(tmp_path, vault,
                                                                                              embedder):
    """Schema 8 moved vectors out of the chunk rows into their own table. A generation written before keeps
    them in `chunks.vector`, and it still answers (dense search, a note's own vectors) while `index` builds
    the new one beside it."""
    kb = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    kb.index()
    want = [(h.chunk.id, round(h.score, 6)) for h in kb.search("VLAN for IoT devices", k=5, mode="dense")]
    ids = [chunk_id for chunk_id, _ in want]
    vectors = kb.manifest.vectors(ids)
    path = kb.manifest.path
    kb.close()
    to_schema_7(path)
    old = make_kb(tmp_path, vault, embedder, inbox=vault / "_no_inbox")
    assert old.manifest.vector_table == "chunks"
    assert [(h.chunk.id, round(h.score, 6)) for h in old.search("VLAN for IoT devices", k=5, mode="dense")] == want
    assert old.manifest.vectors(ids) == vectors
    old.close()

"""Test helpers shared by several test modules."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from pai_kb.kb import KnowledgeBase
from pai_kb.watch import Watcher, WatchSettings


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> float:
    """Seconds until `condition()` held, polled every 20 ms; fails past `timeout` seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def running(kb: KnowledgeBase) -> Iterator[tuple[Watcher, list]]:
    """A watcher on its own thread, once its start-up reconciliation ran; (watcher, batches so far)."""
    batches: list = []
    watcher = Watcher(kb, WatchSettings(debounce_s=0.1, max_delay_s=0.5), on_batch=lambda r, ms: batches.append(r))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: batches, 60, "the watcher's first batch")
        yield watcher, batches
    finally:
        watcher.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def snapshot(kb: KnowledgeBase) -> set[tuple[str, str, str]]:
    """(doc key, chunk id, text) of everything the manifest holds; asserts the vector store and the
    keyword index hold exactly the same ids, so one comparison checks all three."""
    rows = [(c.doc_key, c.id, c.text) for c in kb.manifest.all_chunks()]
    assert kb.manifest.keyword_rows() == len(rows), "keyword index out of step with chunks"
    assert kb.store.ids() == {r[1] for r in rows}, "vector store out of step with manifest"
    return set(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(app, host: str = "127.0.0.1") -> tuple[str, uvicorn.Server]:
    """A real uvicorn server for `app` on a free port (of loopback, or of `host`), once it accepts
    requests; the URL returned is the loopback one."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """A real Chroma server (`chroma run`, installed with chromadb) storing in `path`, on loopback `port`,
    once its port answers (60 s at most)."""
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("chroma run did not start")
            time.sleep(0.2)


def to_schema_7(manifest: Path) -> None:
    """Rewrite a closed manifest into the layout before schema 8: each chunk's vector in its own row
    (`chunks.vector`), no `vectors` table."""
    import sqlite3

    db = sqlite3.connect(manifest)
    try:
        with db:
            db.execute("ALTER TABLE chunks ADD COLUMN vector BLOB")
            db.execute("UPDATE chunks SET vector = (SELECT v.vector FROM vectors v WHERE v.rowid = chunks.rowid)")
            db.execute("DROP TABLE vectors")
    finally:
        db.close()  # the last connection: the WAL is folded into the file, which a read-only reader sees


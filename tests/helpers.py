"""Test helpers shared by several test modules."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from pai_kb.kb import KnowledgeBase


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

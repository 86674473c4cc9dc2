"""The HTTP API: the same library calls as the CLI, as JSON over HTTP (FastAPI + uvicorn).

Bound to 127.0.0.1 by default. A bearer token (`PAI_KB_TOKEN`) is required whenever the server binds to
anything but loopback, and enforced on loopback too when set. `/notes/{path}` serves only files inside
the configured roots that pai-kb would index: no `..`, no absolute paths, no symlinks out.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from pai_kb import render
from pai_kb.client import advertised
from pai_kb.errors import ConfigError, PaiKbError
from pai_kb.kb import KnowledgeBase
from pai_kb.manifest import Filters
from pai_kb.models import SOURCE_TYPES
from pai_kb.sources import is_candidate

MAX_K = 100
MAX_BODY_BYTES = 64 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: str = Field("hybrid", pattern="^(hybrid|dense|keyword)$")
    per_note: int | None = Field(None, ge=1)
    types: list[str] = []
    tags: list[str] = []
    path: str | None = None
    since: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class AskBody(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    k: int = Field(8, ge=1, le=50)
    no_llm: bool = False
    stream: bool = False
    types: list[str] = []
    tags: list[str] = []
    path: str | None = None
    since: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


def create_app(kb: KnowledgeBase, token: str | None = None) -> FastAPI:
    app = FastAPI(title="pai-kb", version="1", description="Search and ask your own notes, clips and transcripts.")
    lock = threading.Lock()  # one KnowledgeBase: one request at a time touches it

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (PAI_KB_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            try:
                return fn(*args, **kwargs)
            except ConfigError as exc:
                raise HTTPException(400, str(exc)) from exc
            except PaiKbError as exc:
                raise HTTPException(502 if "LLM endpoint" in str(exc) else 400, str(exc)) from exc

    guard = [Depends(authorised)]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/status", dependencies=guard)
    def status() -> dict[str, Any]:
        return render.status_dict(call(kb.status))

    @app.get("/search", dependencies=guard)
    def search_get(q: str = Query(min_length=1, max_length=2000), k: int = Query(10, ge=1, le=MAX_K),
                   mode: str = Query("hybrid", pattern="^(hybrid|dense|keyword)$"), per_note: int | None = Query(None, ge=1),
                   type: list[str] = Query([]), tag: list[str] = Query([]), path: str | None = None,
                   since: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$")) -> dict[str, Any]:
        return search_post(SearchBody(query=q, k=k, mode=mode, per_note=per_note, types=type, tags=tag,
                                      path=path, since=since))

    @app.post("/search", dependencies=guard)
    def search_post(body: SearchBody) -> dict[str, Any]:
        filters = _filters(body.types, body.tags, body.path, body.since)
        hits = call(kb.search, body.query, k=body.k, mode=body.mode, per_note=body.per_note, filters=filters)
        return json.loads(render.search_json(body.query, hits, vault=kb.config.vault.name, mode=body.mode, k=body.k, per_note=body.per_note,
                                             filters=vars(filters)))

    @app.post("/ask", dependencies=guard)
    def ask(body: AskBody) -> Any:
        filters = _filters(body.types, body.tags, body.path, body.since)
        if not body.stream:
            answer = call(kb.ask, body.question, k=body.k, filters=filters, use_llm=not body.no_llm)
            return render.answer_dict(answer, kb.config.vault.name)
        return StreamingResponse(_sse(kb, lock, body, filters), media_type="text/event-stream")

    @app.get("/notes/{path:path}", dependencies=guard)
    def note(path: str, root: str = Query("vault", pattern="^(vault|inbox)$")) -> dict[str, Any]:
        target = _inside(kb.roots[root], path, root, kb.exclude)
        stat = target.stat()
        return {"root": root, "path": path, "size": stat.st_size, "mtime": stat.st_mtime,
                "text": target.read_text(encoding="utf-8", errors="replace")}

    @app.get("/related", dependencies=guard)
    def related(note: str = Query(min_length=1), k: int = Query(10, ge=1, le=MAX_K), new_only: bool = False) -> dict[str, Any]:
        return json.loads(render.related_json(note, call(kb.related, note, k=k, new_only=new_only)))

    return app


def _filters(types: list[str], tags: list[str], path: str | None, since: str | None) -> Filters:
    unknown = [t for t in types if t not in SOURCE_TYPES]
    if unknown:
        raise HTTPException(400, f"unknown type {unknown[0]!r}; use one of {', '.join(SOURCE_TYPES)}")
    return Filters(types=tuple(types), tags=tuple(tags), path=path, since=since)


def _inside(root: Path, path: str, root_name: str, exclude: tuple[str, ...]) -> Path:
    """The file at `path` under `root`, or an HTTP error: 400 for paths that try to leave the root,
    404 for anything that is not an indexable file inside it."""
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts or "\x00" in path:
        raise HTTPException(400, "path must be relative to the vault or inbox, without '..'")
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file() or not is_candidate(path, exclude, root_name):
        raise HTTPException(404, f"no note at {path!r}")
    return target


def _sse(kb: KnowledgeBase, lock: threading.Lock, body: AskBody, filters: Filters) -> Iterator[str]:
    """Server-sent events: `token` events while the model writes, then one `answer` event (the JSON of
    `pai-kb ask --json`), or an `error` event."""
    import queue

    events: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def work() -> None:
        with lock:
            try:
                answer = kb.ask(body.question, k=body.k, filters=filters, use_llm=not body.no_llm,
                                on_token=lambda t: events.put(("token", json.dumps(t))))
                events.put(("answer", render.answer_json(answer, kb.config.vault.name)))
            except PaiKbError as exc:
                events.put(("error", json.dumps(str(exc))))
            finally:
                events.put(None)

    threading.Thread(target=work, daemon=True).start()
    while (item := events.get()) is not None:
        yield f"event: {item[0]}\ndata: {item[1]}\n\n"


def serve(kb: KnowledgeBase, host: str, port: int, token: str | None) -> None:
    import uvicorn

    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to serve on {host} without a token: set PAI_KB_TOKEN, or bind to 127.0.0.1")
    kb.check_vault()
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") or is_loopback(host) else host
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit instead lets
        # the server record be removed on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with advertised(kb.config.index_dir, f"http://{local}:{port}"):
        uvicorn.run(create_app(kb, token), host=host, port=port, log_level="warning")

"""The HTTP API: the same library calls as the CLI, as JSON over HTTP (FastAPI + uvicorn).

Bound to 127.0.0.1 by default. A bearer token (`PAI_KB_TOKEN`) is required whenever the server binds to
anything but loopback, and enforced on every route but /health when set. `Guard` refuses, before any
route runs: a `Host` that is not a loopback name or the bound address (DNS rebinding: a web page whose
name now points at 127.0.0.1 is still not this server's page), a cross-origin browser request from an
origin not in `server.allowed_origins`, and a body over the cap, chunked or not. `/notes/{path}` serves
only what `pai_kb.notes` allows. Library errors become HTTP statuses by type, in `STATUS` and nowhere else.
Requests run concurrently (the manifest gives each thread its own connection). `/ask`, streamed or not,
waits on a language model for seconds to minutes, so it runs in its own bounded pool and queue (`AskPool`),
never in the thread pool that answers `/search`, `/status` and the rest: however many answers are
waiting, a search answers at once, and an `/ask` beyond the pool and its queue gets 503 with
`Retry-After` rather than a place in an unbounded line.

The server announces itself (`INDEX/server.json`, which the CLI reads to send searches here) only once
its socket listens and the app has started, so a CLI never finds a server that cannot answer yet.

`/` is a page to search and ask from a browser (`pai_kb/page`): three static files served from the
package, behind the same Guard, under a Content-Security-Policy that lets it load nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
from importlib import resources
import json
import logging
import math
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Annotated, Any, Literal, Protocol, TypeVar

from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field

from pai_kb import render
from pai_kb.client import advertised, new_key, proof
from pai_kb.errors import (ConfigError, IndexLockedError, InvalidRequest, LLMError, VectorServerUnreachable,
                           NoteNotFound, PaiKbError)
from pai_kb.kb import KnowledgeBase
from pai_kb.models import MAX_ASK_K, MAX_K, MAX_TEXT_CHARS, MODES, AskRequest, SearchRequest, checked_date
from pai_kb.privacy import is_loopback_host, withhold

MAX_BODY_BYTES = 64 * 1024
# uvicorn waits this long for requests in flight (an answer still being written) once asked to stop.
SHUTDOWN_GRACE_S = 0.5
Mode = Literal[MODES]
# "host", "host:port" or "[v6]:port" and nothing else: no user-info, path or second host in the header.
_HOST_HEADER = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*)(?::[0-9]{1,5})?")
T = TypeVar("T")
# Library error type -> HTTP status; the most specific type listed first wins.
STATUS: tuple[tuple[type[PaiKbError], int], ...] = (
    (InvalidRequest, 400), (NoteNotFound, 404), (LLMError, 502),
    (IndexLockedError, 409), (VectorServerUnreachable, 503), (ConfigError, 400), (PaiKbError, 500),
)


def real_date(value: str | None) -> str | None:
    """`since` as sent when it is a calendar date (models.checked_date), so the schema refuses
    2024-13-45 with a 422 naming it; ValueError is what the schema turns into that answer."""
    try:
        return None if value is None else checked_date(value)
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None


Date = Annotated[str | None, AfterValidator(real_date)]


def host_name(header: str) -> str | None:
    """The name a `Host` header gives (brackets of an IPv6 address removed), or None when the header is
    anything but a name or address and an optional port: `evil.test@127.0.0.1` names no host of ours."""
    match = _HOST_HEADER.fullmatch(header)
    return match["name"].strip("[]").lower() if match else None


class SearchBody(BaseModel):
    """A POST /search body: what `pai-kb search` takes, checked by its schema (422 otherwise)."""
    query: str = Field(max_length=MAX_TEXT_CHARS)  # blank: refused by the library, in its words
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Mode = "hybrid"
    per_note: int | None = Field(None, ge=1)
    types: list[str] = []
    tags: list[str] = []
    path: str | None = None
    since: Date = None

    def request(self) -> SearchRequest:
        """The library's request; raises InvalidRequest as `SearchRequest.of` does."""
        return SearchRequest.of(self.query, self.k, self.mode, self.per_note, self.types, self.tags, self.path,
                                self.since)


class AskBody(BaseModel):
    """A POST /ask body: what `pai-kb ask` takes, plus `stream` for server-sent events."""
    question: str = Field(max_length=MAX_TEXT_CHARS)
    k: int = Field(8, ge=1, le=MAX_ASK_K)
    no_llm: bool = False
    stream: bool = False
    types: list[str] = []
    tags: list[str] = []
    path: str | None = None
    since: Date = None

    def request(self) -> AskRequest:
        """The library's request; raises InvalidRequest as `AskRequest.of` does."""
        return AskRequest.of(self.question, self.k, not self.no_llm, self.types, self.tags, self.path, self.since)


def remote(request: Request) -> bool:
    """Whether the client is off this machine: local-only notes are then held back (see `privacy`)."""
    return not is_loopback_host(request.client.host if request.client else None)


def status_of(exc: PaiKbError) -> int:
    """The HTTP status of a library error, by its type (the first match in `STATUS`)."""
    return next(code for kind, code in STATUS if isinstance(exc, kind))


class PoolFull(Exception):
    """Every worker of an `AskPool` is busy and its queue is full; `retry_after` is in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy: every answer slot and queue place is taken; retry in {retry_after} s")
        self.retry_after = retry_after


class AskPool:
    """Daemon worker threads and a bounded queue for work that waits on a language model.

    At most `workers` jobs run and `queue` more wait; `submit` beyond that raises `PoolFull` at once
    instead of queueing without end. The threads are daemons, so an answer still waiting on its model
    never keeps a stopping server alive. `retry_after` is the running mean of how long a job took (in
    seconds, rounded up): roughly when the oldest job frees a slot."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self.capacity = workers + queue_size
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0  # running plus queued
        self._mean_s = 5.0  # a guess until the first job finishes
        self._threads = [threading.Thread(target=self._work, name=f"pai-kb-ask-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], T]) -> "Future[T]":
        """Run `job` on a worker; its Future holds the result or the exception. Raises PoolFull."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise PoolFull(self.retry_after)
            self._admitted += 1
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    @property
    def retry_after(self) -> int:
        """Seconds a refused client should wait: the recent mean time of an answer, at least 1."""
        return max(1, math.ceil(self._mean_s))

    def close(self) -> None:
        """Let the workers end once the jobs already queued are done; returns at once."""
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future = item
            started = time.monotonic()
            try:
                if future.set_running_or_notify_cancel():
                    future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 — handed to whoever awaits the future
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._admitted -= 1
                    self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)


def _busy(exc: PoolFull) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


class Guard:
    """ASGI middleware: Host and Origin checks and the body cap, before anything else runs."""

    def __init__(self, app: Any, bind_host: str, origins: tuple[str, ...]) -> None:
        self.app = app
        self.bind_host = bind_host
        self.origins = set(origins)

    def refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the Host or Origin of a request is not allowed (421, 403), else None."""
        host = headers.get("host", "")
        name = host_name(host) or ""
        wildcard = self.bind_host in ("0.0.0.0", "::")  # reachable by any name; the token guards it
        if not (is_loopback_host(name) or name == self.bind_host or wildcard):
            return 421, f"this server answers to 127.0.0.1 or localhost, not to Host '{host}'"
        origin = headers.get("origin")
        if origin and origin not in self.origins and urlsplit(origin).netloc != host:
            return 403, (f"cross-origin request from {origin} refused; allow it with server.allowed_origins "
                         "in a pai-kb.toml (or PAI_KB_ALLOWED_ORIGINS)")
        if int(headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return 413, f"request body over {MAX_BODY_BYTES} bytes"
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self.refusal(headers)
        if refused:
            return await JSONResponse({"detail": refused[1]}, status_code=refused[0])(scope, receive, send)
        body = await _read_capped(receive)
        if body is None:
            return await JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)(
                scope, receive, send)
        replayed = False

        async def replay() -> Any:
            """The body read above, then the real channel (a streaming response listens for disconnects)."""
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_capped(receive: Any) -> bytes | None:
    """The whole request body, however it was sent (length or chunked), or None once over the cap."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return body


def create_app(kb: KnowledgeBase, token: str | None = None, bind_host: str = "127.0.0.1",
               identity_key: str | None = None, mcp: Mountable | None = None) -> FastAPI:
    """The API app. `mcp`: an MCP Streamable HTTP endpoint (mcp_server.HttpEndpoint) served at /mcp behind
    the same Guard and token as every route; its lifespan runs with the app's."""
    # /docs and /redoc load their scripts from a CDN, so offline they are blank pages: off. The OpenAPI
    # document itself is served at /openapi.json.
    asking = AskPool(kb.config.ask_workers, kb.config.ask_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.lifespan() if mcp else nullcontext():
            yield
        asking.close()

    app = FastAPI(title="pai-kb", version=_version(), docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Search and ask your own notes, clips and transcripts.")
    vault = kb.config.vault.name
    origins = kb.config.allowed_origins
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])
    app.add_middleware(Guard, bind_host=bind_host, origins=origins)

    @app.exception_handler(PaiKbError)
    async def library_error(request: Request, exc: PaiKbError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def schema_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own handler echoes the input back, and fails (500) on input that is not valid Unicode."""
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse(json.loads(json.dumps({"detail": errors})), status_code=422)

    async def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (PAI_KB_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    guard = [Depends(authorised)]
    if mcp:
        app.add_route("/mcp", _Bearer(mcp, token), methods=["GET", "POST", "DELETE"], include_in_schema=False)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # Proves to the CLI that this is the server whose private record it read (see `client`); reveals
    # nothing else, so it needs no token.
    @app.get("/identity", include_in_schema=False)
    def identity(nonce: str = Query(min_length=16, max_length=128)) -> dict[str, str]:
        if identity_key is None:
            raise HTTPException(404, "this server has no identity record")
        return {"proof": proof(identity_key, nonce)}

    # The page holds no data of its own (it asks the API, token and all), so it loads without the token.
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return _page_file("index.html")

    @app.get("/page/{name}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        return _page_file(name)

    @app.get("/status", dependencies=guard)
    def status() -> dict[str, Any]:
        return render.status_dict(kb.status())

    @app.get("/search", dependencies=guard)
    def search_get(request: Request, q: str = Query(max_length=MAX_TEXT_CHARS), k: int = Query(10, ge=1, le=MAX_K),
                   mode: Mode = "hybrid", per_note: int | None = Query(None, ge=1),
                   type: list[str] = Query([]), tag: list[str] = Query([]), path: str | None = None,
                   since: Annotated[str | None, Query(), AfterValidator(real_date)] = None) -> dict[str, Any]:
        return search_post(SearchBody(query=q, k=k, mode=mode, per_note=per_note, types=type, tags=tag,
                                      path=path, since=since), request)

    @app.post("/search", dependencies=guard)
    def search_post(body: SearchBody, request: Request) -> dict[str, Any]:
        asked = body.request()
        hits = kb.search(asked)
        hits, withheld = withhold(hits) if remote(request) else (hits, 0)
        return {**render.request_dict(asked, hits, vault), "withheld": withheld}

    # Async, so a waiting answer holds no thread of the pool that runs the other routes: the work itself
    # runs in `asking`, bounded (see AskPool).
    @app.post("/ask", dependencies=guard, responses={503: {"description": "every answer slot is taken; "
                                                                          "see Retry-After"}})
    async def ask(body: AskBody, request: Request) -> Any:
        asked = body.request()
        off = remote(request)
        try:
            if body.stream:
                return StreamingResponse(_sse(asking, kb, asked, off), media_type="text/event-stream")
            answer = asking.submit(lambda: kb.ask(asked, remote=off))
        except PoolFull as exc:
            return _busy(exc)
        return render.answer_dict(await asyncio.wrap_future(answer), vault)

    @app.get("/notes/{path:path}", dependencies=guard)
    def note(path: str, request: Request, root: str | None = None) -> dict[str, Any]:
        found = kb.note(path, root=root)
        if remote(request) and kb.is_local_only(f"{found.root}/{found.path}"):
            raise NoteNotFound(f"'{path}' is local-only: it is served only to this machine")
        return render.note_dict(found)

    @app.get("/related", dependencies=guard)
    def related(request: Request, note: str = Query(min_length=1), k: int = Query(10, ge=1, le=MAX_K),
                new_only: bool = False) -> dict[str, Any]:
        found = kb.related(note, k=k, new_only=new_only)
        if remote(request):
            hidden = kb.manifest.local_only_keys()
            found = [r for r in found if r.doc_key not in hidden]
        return render.related_dict(note, found, vault)

    return app


class Mountable(Protocol):
    """An ASGI app with a lifespan to run around serving (mcp_server.HttpEndpoint)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Entered once around serving; the app answers only inside it."""


class _Bearer:
    """An ASGI app behind the bearer token when one is set: 401 otherwise, as every other route answers.
    (A class, not a function: Starlette mounts an instance as a raw ASGI app.)"""

    def __init__(self, inner: Mountable, token: str | None) -> None:
        self.inner = inner
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        given = Request(scope).headers.get("authorization", "")
        if self.token is not None and not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            refusal = JSONResponse({"detail": "missing or wrong bearer token (PAI_KB_TOKEN)"}, status_code=401,
                                   headers={"WWW-Authenticate": "Bearer"})
            return await refusal(scope, receive, send)
        await self.inner(scope, receive, send)


_PAGE_TYPES = {"index.html": "text/html", "page.js": "text/javascript", "page.css": "text/css"}
# Nothing but the server's own files runs or loads on the page, and no other site may frame it.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}


def _page_file(name: str) -> Response:
    """One of the page's three files, from the package; anything else is a 404."""
    if name not in _PAGE_TYPES:
        raise HTTPException(404, f"no page file '{name}'")
    body = resources.files("pai_kb.page").joinpath(name).read_bytes()
    return Response(body, media_type=f"{_PAGE_TYPES[name]}; charset=utf-8", headers=_PAGE_HEADERS)


def _version() -> str:
    from pai_kb import __version__

    return __version__


def _sse(pool: AskPool, kb: KnowledgeBase, asked: AskRequest, off: bool) -> AsyncIterator[str]:
    """Server-sent events: `token` events while the model writes, then one `answer` event (the JSON of
    `pai-kb ask --json`), or an `error` event. The answer is admitted to `pool` here, before the
    response starts, so a full pool is a 503 (PoolFull) rather than a stream that never begins."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()

    def put(item: tuple[str, str] | None) -> None:
        loop.call_soon_threadsafe(events.put_nowait, item)

    def work() -> None:
        try:
            answer = kb.ask(asked, on_token=lambda t: put(("token", json.dumps(t))), remote=off)
            put(("answer", render.dumps(render.answer_dict(answer, kb.config.vault.name))))
        except PaiKbError as exc:
            put(("error", json.dumps(str(exc))))
        finally:
            put(None)

    pool.submit(work)

    async def relay() -> AsyncIterator[str]:
        while (item := await events.get()) is not None:
            yield f"event: {item[0]}\ndata: {item[1]}\n\n"

    return relay()


def listen(host: str, port: int, token: str | None) -> socket.socket:
    """The listening socket, bound before anything else starts, so a refused bind is one clear error."""
    if not is_loopback_host(host) and not token:
        raise ConfigError(f"refusing to serve on {host} without a token: set PAI_KB_TOKEN, or bind to 127.0.0.1")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port or stop "
                          "what uses it") from None
    return sock


def serve(kb: KnowledgeBase, sock: socket.socket, token: str | None, mcp: Mountable | None = None) -> None:
    """Serve on an already listening socket (see `listen`) until stopped; `mcp`: see `create_app`."""
    kb.check_vault()
    host, port = sock.getsockname()[:2]
    local = "127.0.0.1" if host in ("0.0.0.0", "::") or is_loopback_host(host) else host
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit instead lets
        # the server record be removed on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        kb.warm_up()  # announced only once a first search is as quick as the later ones
    except PaiKbError as exc:  # searches will say so; the rest of the API still serves
        logging.getLogger("pai_kb").warning("the model could not be loaded ahead of searches: %s", exc)
    key = new_key()
    with advertised(kb.config.index_dir, f"http://{local}:{port}", key) as announce:
        server = _Announcing(uvicorn.Config(create_app(kb, token, host, key, mcp), log_level="warning",
                                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S), announce)
        server.run(sockets=[sock])


class _Announcing(uvicorn.Server):
    """A uvicorn server that calls `on_ready` once it accepts requests, not before."""

    def __init__(self, config: Any, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_ready()

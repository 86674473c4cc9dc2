"""The Model Context Protocol server: the knowledge base as tools and resources any MCP-capable assistant
can use, over stdio (`pai-kb mcp`) or Streamable HTTP (`/mcp` of the HTTP server, see `HttpEndpoint`).
Tool results are the same JSON objects as the CLI's `--json`, citations included, and each tool declares
their shape (its output schema). Notes are resources: `resources/list` pages through every indexed file
(`note://vault/<path>`, `note://inbox/<path>`), and the template `note://{root}/{+note}` reads one, or a
range of its lines as `Note.md:12-30`.

MCP results leave this machine (the assistant's model reads them), so local-only notes (see `privacy`)
never appear in them: searches, answers, related notes and recent changes hold them back and say how many
in `withheld`; reading one is refused. Library errors reach the client as tool or resource errors carrying
the CLI's one-line message (`_tool_errors`, `_resource_errors`), never as tracebacks; everything only reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ListResourcesResult, PaginatedRequestParams, Resource, ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict

from pai_kb import __version__, render
from pai_kb.errors import NoteNotFound, PaiKbError
from pai_kb.kb import KnowledgeBase
from pai_kb.models import ISO_DATE_PATTERN, MAX_TEXT_CHARS, MODES, SOURCE_TYPES, AskRequest, SearchRequest
from pai_kb.privacy import withhold

INSTRUCTIONS = ("Search and question the user's personal knowledge base: their Obsidian notes, saved web "
                "clips and talk transcripts. Cite passages by path and lines (or URL and time) when you use them. "
                "Notes are also resources (note://vault/<path>), to attach or read by line range.")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
NOTE_TEMPLATE = "note://{root}/{+note}"
PAGE_SIZE = 100  # resources per resources/list page
F = TypeVar("F", bound=Callable[..., Any])

Mode = Annotated[Literal[MODES], Field(description="hybrid (default): keywords and meaning "
                                                                          "fused; dense: meaning; keyword: exact words")]
SourceTypes = Annotated[list[Literal[SOURCE_TYPES]], Field(description="only these kinds of material (any of them)")]
Tags = Annotated[list[str], Field(description="only material with one of these tags (without '#'), nested tags "
                                              "included")]
PathGlob = Annotated[str | None, Field(description="only paths matching this glob, e.g. 'Projects/*'")]
Since = Annotated[str | None, Field(description="only material dated on or after this day, YYYY-MM-DD",
                                   pattern=ISO_DATE_PATTERN)]
PerNote = Annotated[int | None, Field(ge=1, description="at most this many passages from any one file")]


# Output schemas: every key the render functions give, so clients know the shape before calling (the SDK
# validates results against them and drops keys they do not name: tests/test_mcp_http.py compares the two).
class Passage(TypedDict):
    """One ranked passage with its citation (lines 1-based, inclusive; start_s/end_s in seconds)."""
    rank: int
    score: float
    path: str
    root: str
    title: str | None
    heading: str | None
    line_start: int
    line_end: int
    source_type: str
    tags: list[str]
    text: str
    url: str | None
    start_s: float | None
    end_s: float | None
    chunk_id: str
    obsidian_uri: str | None
    similarity: float | None  # dense cosine similarity to the query, when the dense arm saw the passage
    local_only: bool  # always false here: local-only passages never reach an MCP client
    at_s: float | None  # a transcript passage: the start of its cue nearest the query, in seconds


class SearchResult(TypedDict):
    """Ranked passages; `withheld`: passages of local-only notes held back."""
    query: str
    mode: str
    k: int
    per_note: int | None
    filters: dict[str, Any]
    results: list[Passage]
    withheld: int


class Citation(TypedDict):
    """Source [n] of an answer: where it is, and the passages it stands for."""
    n: int
    path: str
    root: str
    heading: str | None
    line_start: int
    line_end: int
    url: str | None
    start_s: float | None
    at_s: float | None  # a transcript source: the moment its best passage points at, in seconds
    chunk_id: str
    chunk_ids: list[str]
    obsidian_uri: str | None


class AnswerResult(TypedDict):
    """An answer with its checked citations; `withheld`: passages of local-only notes held back."""
    question: str
    answer: str
    grounded: bool
    citations: list[Citation]
    model: str | None
    abstained: bool
    extractive: bool
    invalid_citations: list[int]
    best_similarity: float | None
    withheld: int


class NoteResult(TypedDict):
    """A file's text, or a range of its lines (1-based, inclusive); `mtime` in seconds since the epoch."""
    root: str
    path: str
    line_start: int
    line_end: int
    size: int
    mtime: float
    text: str


class RelatedNote(TypedDict):
    """A related note; `linked`: the first note already links to it."""
    rank: int
    score: float
    path: str
    root: str
    title: str | None
    linked: bool
    obsidian_uri: str | None


class RelatedResult(TypedDict):
    """Related notes, best first; `withheld`: local-only notes left out."""
    note: str
    results: list[RelatedNote]
    withheld: int


class RecentFile(TypedDict):
    """A file lately (re)indexed; `indexed_at` in seconds since the epoch."""
    root: str
    path: str
    title: str | None
    source_type: str | None
    date: str | None
    indexed_at: float | None


class RecentResult(TypedDict):
    """Recently indexed files, newest first; `withheld`: local-only files left out."""
    files: list[RecentFile]
    withheld: int


class StatusResult(TypedDict):
    """What the index holds and what on disk it does not reflect yet (as `pai-kb status --json`)."""
    index: str
    files: int
    chunks: int
    model: str | None
    model_matches_settings: bool
    size_bytes: int
    last_sync: str | None
    out_of_date: dict[str, list[str]]
    skipped: dict[str, str]
    exclude: list[dict[str, Any]]
    verified: bool
    changed_unseen_by_stat: list[str]
    local_only: int
    recordings: dict[str, list[dict[str, Any]]]  # pending, skipped: {file, minutes, reason}


def _tool_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PaiKbError as exc:
            raise ToolError(str(exc)) from None
    return wrapper  # type: ignore[return-value]


def _resource_errors(fn: F) -> F:
    """Library errors as resource errors: an unknown or refused note is not found (INVALID_PARAMS)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NoteNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except PaiKbError as exc:
            raise ResourceError(str(exc)) from None
    return wrapper  # type: ignore[return-value]


def note_uri(doc_key: str) -> str:
    """`note://vault/Folder/My%20note.md` for the doc key `vault/Folder/My note.md`."""
    root, _, path = doc_key.partition("/")
    return f"note://{root}/{quote(path, safe='/')}"


def _shared_note(kb: KnowledgeBase, spec: str, root: str | None) -> dict[str, Any]:
    """A note as `get_note` gives it; NoteNotFound for a local-only one (it never leaves the machine)."""
    found = kb.note(spec, root=root)
    if kb.is_local_only(f"{found.root}/{found.path}"):
        raise NoteNotFound(f"'{spec}' is local-only (private: true, or privacy.local_only in pai-kb.toml): it is "
                           "not given to MCP clients; read it with `pai-kb get` on this machine")
    return render.note_dict(found)


class _Server(MCPServer):
    """MCPServer whose `resources/list` pages through the knowledge base's files, in doc-key order."""

    def __init__(self, kb: KnowledgeBase, **settings: Any) -> None:
        super().__init__(**settings)
        self.kb = kb

    async def _handle_list_resources(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        """One page (see `_resource_page`), read off the event loop; a library error is the client's one line."""
        try:
            return await anyio.to_thread.run_sync(_resource_page, self.kb, params.cursor if params else None)
        except PaiKbError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None


def _resource_page(kb: KnowledgeBase, cursor: str | None) -> ListResourcesResult:
    """Up to PAGE_SIZE files after `cursor` (the last doc key of the page before), local-only ones left out."""
    kb.recent(1)  # checks that there is an index, and that it is this vault's, before it is read
    hidden = kb.manifest.local_only_keys()
    titles = kb.manifest.titles()
    keys = sorted(key for key in titles if key not in hidden and (cursor is None or key > cursor))
    page = keys[:PAGE_SIZE]
    resources = [Resource(uri=note_uri(key), name=key, title=titles[key] or None, mime_type="text/markdown")
                 for key in page]
    return ListResourcesResult(resources=resources, next_cursor=page[-1] if len(keys) > PAGE_SIZE else None)


def build(kb: KnowledgeBase) -> MCPServer:
    """The MCP server for `kb`: tools search_notes, ask, get_note, related_notes, recent_changes, status,
    and the notes as resources."""
    server = _Server(kb, name="pai-kb", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    vault = kb.config.vault.name

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def search_notes(query: Annotated[str, Field(max_length=MAX_TEXT_CHARS, description="what to look for")],
                     k: Annotated[int, Field(ge=1, le=50, description="passages to return")] = 8,
                     mode: Mode = "hybrid", types: SourceTypes = [], tags: Tags = [],  # noqa: B006 — never mutated
                     path: PathGlob = None, since: Since = None, per_note: PerNote = None) -> SearchResult:
        """Find passages in the user's notes, web clips and transcripts that answer a query. Returns ranked
        passages with their text and a citation: file path, heading, line range, and for clips the URL, for
        transcripts the start time in seconds. Filters combine: any of `types`, any of `tags`, and path, since."""
        asked = SearchRequest.of(query, k, mode, per_note, types, tags, path, since)
        hits, withheld = withhold(kb.search(asked))
        return {**render.request_dict(asked, hits, vault), "withheld": withheld}  # type: ignore[typeddict-item]

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def ask(question: Annotated[str, Field(max_length=MAX_TEXT_CHARS, description="the question")],
            k: Annotated[int, Field(ge=1, le=30, description="passages to retrieve")] = 8,
            types: SourceTypes = [], tags: Tags = [], path: PathGlob = None,  # noqa: B006 — never mutated
            since: Since = None) -> AnswerResult:
        """Answer a question from the user's own material only, with numbered citations that were checked
        against the passages used. 'abstained' is true when the notes hold nothing relevant; 'grounded' is
        false when the answer cites nothing. Without a configured language model the answer is the best
        passages, labelled as such. Filters narrow the passages as in search_notes."""
        asked = AskRequest.of(question, k, True, types, tags, path, since)
        return render.answer_dict(kb.ask(asked, remote=True), vault)  # type: ignore[return-value]

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def get_note(path: Annotated[str, Field(min_length=1, description="a path as given in search results, or a "
                                                                      "note title; ':12-30' picks lines")],
                 root: Annotated[Literal["vault", "inbox"] | None,
                                 Field(description="'vault' or 'inbox' when path is a path; omit to look the "
                                                   "name up in the index")] = None) -> NoteResult:
        """The text of one note or inbox file (or a range of its lines), by its path relative to the vault or
        the inbox, or by its title. An unknown name comes back with close matches to try."""
        return _shared_note(kb, path, root)  # type: ignore[return-value]

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def related_notes(note: Annotated[str, Field(min_length=1, description="a note's path or title")],
                      k: Annotated[int, Field(ge=1, le=50, description="notes to return")] = 10,
                      new_only: Annotated[bool, Field(description="leave out notes it already links to")] = False,
                      ) -> RelatedResult:
        """Notes most related to a note, best first; new_only suggests new connections."""
        found = kb.related(note, k=k, new_only=new_only)
        hidden = kb.manifest.local_only_keys()
        shared = [r for r in found if r.doc_key not in hidden]
        return {**render.related_dict(note, shared, vault), "withheld": len(found) - len(shared)}  # type: ignore

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def recent_changes(limit: Annotated[int, Field(ge=1, le=200, description="files to list")] = 20) -> RecentResult:
        """The files most recently added to or updated in the knowledge base, newest first."""
        files = kb.recent(limit)
        hidden = kb.manifest.local_only_keys()
        shared = [f for f in files if f"{f['root']}/{f['path']}" not in hidden]
        return {"files": shared, "withheld": len(files) - len(shared)}  # type: ignore[typeddict-item]

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def status() -> StatusResult:
        """How many files and passages the index holds, when it was last synced, and which files on disk
        it does not reflect yet (new, changed, deleted) or skipped, with why."""
        return render.status_dict(kb.status())  # type: ignore[return-value]

    @server.resource(NOTE_TEMPLATE, name="note", mime_type="text/markdown",
                     description="A note or inbox file by root ('vault' or 'inbox') and path, e.g. "
                                 "note://vault/Projects/Plan.md; append ':12-30' for those lines only.")
    @_resource_errors
    def note_resource(root: str, note: str) -> str:
        if root not in ("vault", "inbox"):
            raise NoteNotFound(f"no root '{root}': a note URI is note://vault/<path> or note://inbox/<path>")
        return _shared_note(kb, note, root)["text"]

    return server


class HttpEndpoint:
    """The MCP server for `kb` as an ASGI endpoint speaking Streamable HTTP, to mount at one path of an
    app that checks Host, Origin and the token first (the SDK's own Host checks are off: that app's
    are the one rule set). `lifespan()` must be entered, once, around serving (it runs the sessions)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        server = build(kb)
        server.streamable_http_app(transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self._sessions = server.session_manager

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._sessions.handle_request(scope, receive, send)

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """The session manager's run: enter once, around serving; sessions end when it exits."""
        return self._sessions.run()


def run(kb: KnowledgeBase) -> None:
    """Serve `kb` over stdio until the client closes the connection."""
    build(kb).run("stdio")

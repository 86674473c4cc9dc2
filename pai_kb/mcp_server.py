"""The Model Context Protocol server (`pai-kb mcp`, stdio): the knowledge base as tools any MCP-capable
assistant can call. Results are the same JSON objects as the CLI's `--json`, citations included, so an
assistant can quote and link back to the person's own files.

Library errors reach the client as tool errors carrying the CLI's one-line message (`_tool_errors`, the
one place they are mapped), never as tracebacks; every tool only reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import version
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from pai_kb import render
from pai_kb.errors import PaiKbError
from pai_kb.kb import KnowledgeBase
from pai_kb.models import ISO_DATE_PATTERN, SOURCE_TYPES, Filters
from pai_kb.search import MODES

INSTRUCTIONS = ("Search and question the user's personal knowledge base: their Obsidian notes, saved web "
                "clips and talk transcripts. Cite passages by path and lines (or URL and time) when you use them.")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
F = TypeVar("F", bound=Callable[..., Any])

Mode = Annotated[Literal[MODES], Field(description="hybrid (default): keywords and meaning "
                                                                          "fused; dense: meaning; keyword: exact words")]
SourceType = Annotated[Literal[SOURCE_TYPES] | None,
                       Field(description="only this kind of material")]
Tag = Annotated[str | None, Field(description="only material with this tag (without '#'), nested tags included")]
PathGlob = Annotated[str | None, Field(description="only paths matching this glob, e.g. 'Projects/*'")]
Since = Annotated[str | None, Field(description="only material dated on or after this day, YYYY-MM-DD",
                                   pattern=ISO_DATE_PATTERN)]


def _tool_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PaiKbError as exc:
            raise ToolError(str(exc)) from None
    return wrapper  # type: ignore[return-value]


def build(kb: KnowledgeBase) -> MCPServer:
    server = MCPServer("pai-kb", instructions=INSTRUCTIONS, version=version("pai-kb"), log_level="WARNING")
    vault = kb.config.vault.name

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def search_notes(query: Annotated[str, Field(min_length=1, max_length=2000, description="what to look for")],
                     k: Annotated[int, Field(ge=1, le=50, description="passages to return")] = 8,
                     mode: Mode = "hybrid", type: SourceType = None, tag: Tag = None, path: PathGlob = None,
                     since: Since = None) -> dict[str, Any]:
        """Find passages in the user's notes, web clips and transcripts that answer a query. Returns ranked
        passages with their text and a citation: file path, heading, line range, and for clips the URL, for
        transcripts the start time in seconds."""
        filters = Filters.of((type,) if type else (), (tag,) if tag else (), path, since)
        hits = kb.search(query, k=k, mode=mode, filters=filters)
        return render.search_dict(query, hits, vault=vault, mode=mode, k=k)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def ask(question: Annotated[str, Field(min_length=1, max_length=2000, description="the question")],
            k: Annotated[int, Field(ge=1, le=30, description="passages to retrieve")] = 8) -> dict[str, Any]:
        """Answer a question from the user's own material only, with numbered citations that were checked
        against the passages used. 'abstained' is true when the notes hold nothing relevant; 'grounded' is
        false when the answer cites nothing. Without a configured language model the answer is the best
        passages, labelled as such."""
        return render.answer_dict(kb.ask(question, k=k), vault)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def get_note(path: Annotated[str, Field(min_length=1, description="a path as given in search results, or a "
                                                                      "note title; ':12-30' picks lines")],
                 root: Annotated[Literal["vault", "inbox"] | None,
                                 Field(description="'vault' or 'inbox' when path is a path; omit to look the "
                                                   "name up in the index")] = None) -> dict[str, Any]:
        """The text of one note or inbox file (or a range of its lines), by its path relative to the vault or
        the inbox, or by its title. An unknown name comes back with close matches to try."""
        return render.note_dict(kb.note(path, root=root))

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def related_notes(note: Annotated[str, Field(min_length=1, description="a note's path or title")],
                      k: Annotated[int, Field(ge=1, le=50, description="notes to return")] = 10,
                      new_only: Annotated[bool, Field(description="leave out notes it already links to")] = False,
                      ) -> dict[str, Any]:
        """Notes most related to a note, best first; new_only suggests new connections."""
        return render.related_dict(note, kb.related(note, k=k, new_only=new_only), kb.config.vault.name)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    def recent_changes(limit: Annotated[int, Field(ge=1, le=200, description="files to list")] = 20) -> dict[str, Any]:
        """The files most recently added to or updated in the knowledge base, newest first."""
        return {"files": kb.recent(limit)}

    return server


def run(kb: KnowledgeBase) -> None:
    build(kb).run("stdio")

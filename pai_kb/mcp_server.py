"""The Model Context Protocol server (`pai-kb mcp`, stdio): the knowledge base as tools any MCP-capable
assistant can call. Results are the same JSON objects as the CLI's `--json`, citations included, so an
assistant can quote and link back to the person's own files."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer

from pai_kb import render
from pai_kb.kb import KnowledgeBase
from pai_kb.manifest import Filters
from pai_kb.server import _inside

INSTRUCTIONS = ("Search and question the user's personal knowledge base: their Obsidian notes, saved web "
                "clips and talk transcripts. Cite passages by path and lines (or URL and time) when you use them.")


def build(kb: KnowledgeBase) -> MCPServer:
    server = MCPServer("pai-kb", instructions=INSTRUCTIONS)

    @server.tool()
    def search_notes(query: str, k: int = 8, mode: str = "hybrid", type: str | None = None, tag: str | None = None,
                     path: str | None = None, since: str | None = None) -> dict[str, Any]:
        """Find passages in the user's notes, web clips and transcripts that answer a query. Returns ranked
        passages with their text and a citation: file path, heading, line range, and for clips the URL, for
        transcripts the start time in seconds. mode: hybrid (default), dense or keyword; type: note,
        webclip, transcript or pdf; tag: a tag without '#'; path: a glob; since: YYYY-MM-DD."""
        filters = Filters(types=(type,) if type else (), tags=(tag,) if tag else (), path=path, since=since)
        hits = kb.search(query, k=max(1, min(k, 50)), mode=mode, filters=filters)
        return json.loads(render.search_json(query, hits, vault=kb.config.vault.name, mode=mode, k=k))

    @server.tool()
    def ask(question: str, k: int = 8) -> dict[str, Any]:
        """Answer a question from the user's own material only, with numbered citations that were checked
        against the passages used. 'abstained' is true when the notes hold nothing relevant; 'grounded' is
        false when the answer cites nothing. Without a configured language model the answer is the best
        passages, labelled as such."""
        return render.answer_dict(kb.ask(question, k=max(1, min(k, 30))), kb.config.vault.name)

    @server.tool()
    def get_note(path: str, root: str = "vault") -> dict[str, Any]:
        """The full text of one note or inbox file, by its path relative to the vault (root='vault') or
        the inbox (root='inbox'), as given in search results."""
        target = _inside(kb.roots[root] if root in kb.roots else kb.config.vault, path, root, kb.exclude)
        return {"root": root, "path": path, "text": target.read_text(encoding="utf-8", errors="replace")}

    @server.tool()
    def related_notes(note: str, k: int = 10, new_only: bool = False) -> dict[str, Any]:
        """Notes most related to a note (its path or title), best first; new_only leaves out the notes it
        already links to, to suggest new connections."""
        return json.loads(render.related_json(note, kb.related(note, k=max(1, min(k, 50)), new_only=new_only)))

    @server.tool()
    def recent_changes(limit: int = 20) -> dict[str, Any]:
        """The files most recently added to or updated in the knowledge base, newest first."""
        return {"files": kb.manifest.recent(max(1, min(limit, 200)))}

    return server


def run(kb: KnowledgeBase) -> None:
    build(kb).run("stdio")

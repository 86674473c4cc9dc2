"""One request shape: the CLI, HTTP and MCP build the same `SearchRequest` / `AskRequest` from the same
input, and the library checks it once (so each interface refuses a bad one with the same words)."""

from __future__ import annotations

import re

import anyio
import httpx
import httpx2
import pytest
from click.testing import CliRunner
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import indexed_sample
from helpers import start
from pai_kb.cli import main
from pai_kb.errors import InvalidRequest
from pai_kb.kb import KnowledgeBase
from pai_kb.mcp_server import HttpEndpoint
from pai_kb.models import MAX_ASK_K, AskRequest, Filters, SearchRequest
from pai_kb.server import create_app

TOKEN = "requests-token-789"


@pytest.fixture
def served(tmp_path, real_embedder, monkeypatch):
    """An indexed sample, its CLI arguments, a running server (HTTP and MCP) on it, and the list of
    requests that reached the library's `search` and `ask`, whichever interface sent them."""
    kb = indexed_sample(tmp_path, real_embedder)
    reached: list[object] = []
    search, ask = KnowledgeBase.search, KnowledgeBase.ask

    def recording_search(self, request, *args, **kwargs):
        reached.append(request)
        return search(self, request, *args, **kwargs)

    def recording_ask(self, request, *args, **kwargs):
        reached.append(request)
        return ask(self, request, *args, **kwargs)

    monkeypatch.setattr(KnowledgeBase, "search", recording_search)
    monkeypatch.setattr(KnowledgeBase, "ask", recording_ask)
    url, server = start(create_app(kb, token=TOKEN, mcp=HttpEndpoint(kb)))
    c = kb.config
    cli = ["--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir)]
    yield cli, url, reached
    server.should_exit = True
    kb.close()


def mcp_call(url: str, tool: str, arguments: dict) -> object:
    async def run():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http, \
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool(tool, arguments)
    return anyio.run(run)


def test_a_search_reaches_the_library_as_the_same_request_from_cli_http_and_mcp(served):
    cli, url, reached = served
    out = CliRunner().invoke(main, [*cli, "search", "pour-over brew", "-k", "3", "--mode", "keyword", "--type",
                                    "note", "--tag", "#coffee/", "--path", "Coffee/*", "--since", "2020-01-01",
                                    "--local", "--json"])
    assert out.exit_code == 0, out.output
    got = httpx.post(f"{url}/search", headers={"Authorization": f"Bearer {TOKEN}"},
                     json={"query": "pour-over brew", "k": 3, "mode": "keyword", "types": ["note"],
                           "tags": ["#coffee/"], "path": "Coffee/*", "since": "2020-01-01"})
    assert got.status_code == 200, got.text
    called = mcp_call(url, "search_notes", {"query": "pour-over brew", "k": 3, "mode": "keyword", "types": ["note"],
                                            "tags": ["#coffee/"], "path": "Coffee/*", "since": "2020-01-01"})
    assert not called.is_error
    expected = SearchRequest("pour-over brew", 3, "keyword", None, Filters(("note",), ("coffee",), "Coffee/*",
                                                                          "2020-01-01"))
    assert reached == [expected, expected, expected]


def test_a_question_reaches_the_library_as_the_same_request_from_cli_http_and_mcp(served):
    cli, url, reached = served
    out = CliRunner().invoke(main, [*cli, "ask", "how long should a pour-over brew take?", "-k", "4", "--type",
                                    "note", "--tag", "coffee", "--since", "2020-01-01", "--json"])
    assert out.exit_code == 0, out.output
    got = httpx.post(f"{url}/ask", headers={"Authorization": f"Bearer {TOKEN}"},
                     json={"question": "how long should a pour-over brew take?", "k": 4, "types": ["note"],
                           "tags": ["coffee"], "since": "2020-01-01"})
    assert got.status_code == 200, got.text
    called = mcp_call(url, "ask", {"question": "how long should a pour-over brew take?", "k": 4, "types": ["note"],
                                   "tags": ["coffee"], "since": "2020-01-01"})
    assert not called.is_error
    expected = AskRequest("how long should a pour-over brew take?", 4, True,
                          Filters(("note",), ("coffee",), None, "2020-01-01"))
    assert reached == [expected, expected, expected]
    assert got.json()["citations"] and all(c["path"].startswith("Coffee/") for c in got.json()["citations"])


@pytest.mark.parametrize("args, says", [
    (dict(question="  "), "the question is empty; ask something"),
    (dict(question="why?", k=0), f"k=0 is out of range; ask for 1 to {MAX_ASK_K} passages"),
    (dict(question="why?", k=MAX_ASK_K + 1), f"k={MAX_ASK_K + 1} is out of range"),
    (dict(question="why?", types=["memo"]), "unknown type 'memo'"),
    (dict(question="why?", since="2024-02-30"), "is not a date (no such day)"),
    (dict(question="why?", path="a[b"), "has a '[' without its ']'"),
])
def test_a_bad_question_is_refused_by_the_library(args, says):
    with pytest.raises(InvalidRequest, match=re.escape(says)):
        AskRequest.of(**args)

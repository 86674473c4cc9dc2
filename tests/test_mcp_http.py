"""MCP over Streamable HTTP at /mcp, through the SDK's own HTTP client against a real uvicorn server on
loopback: every tool listed and called with its declared output schema, notes as paged resources and a
line-range template, local-only notes held back, and the API's Host, Origin and token checks in front."""

import os
import subprocess
import sys
import time

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PaginatedRequestParams

from conftest import HashEmbedder, indexed_sample
from helpers import free_port, start
from pai_kb import mcp_server, render
from pai_kb.mcp_server import NOTE_TEMPLATE, HttpEndpoint
from pai_kb.server import create_app

TOKEN = "mcp-token-456"
SECRET = "The vault combination is 31-14-59."
TOOLS = {"search_notes", "ask", "get_note", "related_notes", "recent_changes", "status"}


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp")
    kb = indexed_sample(tmp, HashEmbedder())
    (kb.config.vault / "Combination.md").write_text(f"---\nprivate: true\n---\n# Safe\n\n{SECRET}\n")
    kb.index()
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def url(kb):
    base, server = start(create_app(kb, token=TOKEN, mcp=HttpEndpoint(kb)))
    yield f"{base}/mcp"
    server.should_exit = True


def session_run(url: str, work, token: str = TOKEN):
    """Run `work(session)` in an initialised MCP client session over Streamable HTTP; its result."""
    async def main():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http, \
                streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)
    return anyio.run(main)


def test_a_client_over_http_lists_and_calls_every_tool(url, kb):
    calls = [("search_notes", {"query": "what does the IoT VLAN allow?", "k": 3}),
             ("search_notes", {"query": "brew", "types": ["note"], "tags": ["coffee"], "path": "Coffee/*",
                               "per_note": 1}),
             ("ask", {"question": "how long should a pour-over brew take?"}),
             ("get_note", {"path": "Homelab/Backups.md:1-3", "root": "vault"}),
             ("related_notes", {"note": "Pour-over brewing", "k": 3}),
             ("recent_changes", {"limit": 50}),
             ("status", {}),
             ("get_note", {"path": "Backupz"})]

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        return tools, [await session.call_tool(name, args) for name, args in calls]

    tools, results = session_run(url, work)
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.output_schema["type"] == "object" and tool.output_schema["properties"], tool.name
    assert {"withheld", "results"} <= set(tools["search_notes"].output_schema["properties"])
    assert {"types", "tags", "path", "since", "per_note"} <= set(tools["search_notes"].input_schema["properties"])
    search, filtered, answer, lines, related, recent, status, unknown = results
    assert all(not r.is_error for r in results[:-1]), [r.content for r in results if r.is_error]
    assert search.structured_content["results"][0]["path"] == "Homelab/Home network.md"
    # The declared shapes name every key the library's JSON has (the SDK drops keys a schema does not name).
    assert set(search.structured_content["results"][0]) == set(render.hit_dict(kb.search("IoT VLAN")[0]))
    assert set(status.structured_content) == set(render.status_dict(kb.status()))
    assert set(answer.structured_content) == set(render.answer_dict(kb.ask("pour-over brew time")))
    assert set(recent.structured_content["files"][0]) == set(kb.recent(1)[0])
    assert set(lines.structured_content) == set(render.note_dict(kb.note("Homelab/Backups.md")))
    expected = render.related_dict("Pour-over brewing", kb.related("Pour-over brewing", k=1))
    assert set(related.structured_content["results"][0]) == set(expected["results"][0])
    hits = filtered.structured_content["results"]
    assert hits and {h["path"].split("/")[0] for h in hits} == {"Coffee"}
    assert len({h["path"] for h in hits}) == len(hits)  # per_note=1
    assert filtered.structured_content["filters"]["tags"] == ["coffee"]
    assert answer.structured_content["citations"] and answer.structured_content["withheld"] == 0
    note = lines.structured_content
    assert (note["line_start"], note["line_end"]) == (1, 3) and note["text"].count("\n") <= 3
    assert related.structured_content["results"]
    assert "vault/Combination.md" not in {f"{f['root']}/{f['path']}" for f in recent.structured_content["files"]}
    assert recent.structured_content["withheld"] == 1
    assert status.structured_content["files"] > 10 and status.structured_content["local_only"] == 1
    assert unknown.is_error and "Backupz" in unknown.content[0].text and "Traceback" not in unknown.content[0].text


def test_notes_are_resources_paged_and_read_by_lines(url, kb, monkeypatch):
    monkeypatch.setattr(mcp_server, "PAGE_SIZE", 4)

    async def work(session):
        pages, cursor = [], None
        while True:
            page = await session.list_resources(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            pages.append(page.resources)
            if not (cursor := page.next_cursor):
                break
        templates = (await session.list_resource_templates()).resource_templates
        whole = await session.read_resource("note://vault/Homelab/Backups.md")
        part = await session.read_resource("note://vault/Coffee/Pour-over%20brewing.md:1-2")
        refused = []
        for uri in ("note://vault/Combination.md", "note://vault/No%20such%20note.md", "note://vault/../secret.md"):
            try:
                await session.read_resource(uri)
            except MCPError as exc:
                refused.append((exc.error.code, exc.error.message))
        return pages, templates, whole, part, refused

    pages, templates, whole, part, refused = session_run(url, work)
    assert all(len(p) <= 4 for p in pages) and len(pages) > 2
    uris = [r.uri for p in pages for r in p]
    expected = sorted(k for k in kb.manifest.titles() if k != "vault/Combination.md")
    assert uris == [mcp_server.note_uri(k) for k in expected]
    assert "note://vault/Coffee/Pour-over%20brewing.md" in uris
    assert [t.uri_template for t in templates] == [NOTE_TEMPLATE]
    on_disk = (kb.config.vault / "Homelab" / "Backups.md").read_text()
    assert whole.contents[0].text == on_disk
    brewing = (kb.config.vault / "Coffee" / "Pour-over brewing.md").read_text().splitlines()
    assert part.contents[0].text.splitlines() == brewing[:2]
    assert len(refused) == 3 and SECRET not in str(refused)
    assert refused[0][0] == INVALID_PARAMS and "local-only" in refused[0][1]
    assert refused[1][0] == INVALID_PARAMS and "No such note" in refused[1][1]


def test_local_only_notes_never_reach_an_mcp_client(url):
    async def work(session):
        return (await session.call_tool("search_notes", {"query": "vault combination safe", "k": 20}),
                await session.call_tool("get_note", {"path": "Combination.md", "root": "vault"}),
                await session.call_tool("ask", {"question": "what is the vault combination?"}))

    search, note, answer = session_run(url, work)
    assert search.structured_content["withheld"] >= 1 and answer.structured_content["withheld"] >= 1
    assert SECRET not in str(search.structured_content) and SECRET not in str(answer.structured_content)
    assert note.is_error and "local-only" in note.content[0].text and SECRET not in note.content[0].text


def test_forged_host_bad_origin_and_missing_token_get_nothing(url):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "probe", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {TOKEN}"}
    forged = httpx.post(url, json=hello, headers={**headers, "Host": "evil.test"})
    assert forged.status_code == 421 and "evil.test" in forged.json()["detail"]
    assert "mcp-session-id" not in forged.headers
    cross = httpx.post(url, json=hello, headers={**headers, "Origin": "http://evil.test"})
    assert cross.status_code == 403 and "mcp-session-id" not in cross.headers
    anonymous = httpx.post(url, json=hello, headers={"Accept": headers["Accept"]})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert "mcp-session-id" not in anonymous.headers
    with pytest.raises(Exception):
        session_run(url, lambda s: s.list_tools(), token="wrong")
    fine = httpx.post(url, json=hello, headers=headers)
    assert fine.status_code == 200 and fine.headers["mcp-session-id"]


def test_pai_kb_mcp_http_serves_mcp_from_the_command_line(kb):
    """`pai-kb mcp --http` as a person starts it: a real process, ready once /health answers."""
    c = kb.config
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pai_kb", "--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir),
         "mcp", "--http", "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PAI_KB_TOKEN": TOKEN}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "pai-kb mcp --http did not start"
                time.sleep(0.1)

        async def work(session):
            return ({t.name for t in (await session.list_tools()).tools},
                    await session.read_resource("note://vault/Homelab/Backups.md"))

        tools, note = session_run(f"http://127.0.0.1:{port}/mcp", work)
        assert tools == TOOLS
        assert note.contents[0].text == (c.vault / "Homelab" / "Backups.md").read_text()
        forged = httpx.post(f"http://127.0.0.1:{port}/mcp", json={}, headers={"Host": "evil.test"})
        assert forged.status_code == 421
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_blank_query_is_refused_in_the_library_s_words(url):
    async def work(session):
        return (await session.call_tool("search_notes", {"query": "   "}),
                await session.call_tool("ask", {"question": ""}))

    search, ask = session_run(url, work)
    assert search.is_error and search.content[0].text.endswith("the query is empty; say what to look for")
    assert ask.is_error and ask.content[0].text.endswith("the question is empty; ask something")

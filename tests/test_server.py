"""The HTTP API through a real uvicorn server on a free loopback port, and the MCP server through the
SDK's own client over stdio."""

import json
import os
import socket
import sys
import time

import anyio
import httpx
import pytest

from conftest import indexed_sample
from helpers import free_port, start
from fake_llm import FakeLLM, Reply
from pai_kb.errors import ConfigError
from pai_kb.privacy import is_loopback_host as is_loopback
from pai_kb.server import create_app, listen

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def kb(tmp_path_factory, real_embedder):
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "secret.md").write_text("outside the vault")
    return indexed_sample(tmp, real_embedder)


@pytest.fixture(scope="module")
def api(kb):
    url, server = start(create_app(kb))
    yield url
    server.should_exit = True


def test_health_status_openapi(api):
    assert httpx.get(f"{api}/health").json() == {"status": "ok"}
    status = httpx.get(f"{api}/status").json()
    assert status["files"] >= 20 and status["model"] == "all-MiniLM-L6-v2+int8"
    spec = httpx.get(f"{api}/openapi.json").json()
    assert {"/health", "/status", "/search", "/ask", "/notes/{path}", "/related"} <= set(spec["paths"])


def test_search_get_and_post(api):
    got = httpx.get(f"{api}/search", params={"q": "how long should a pour-over take", "k": 3}).json()
    assert got["results"][0]["path"] == "Coffee/Pour-over brewing.md" and len(got["results"]) == 3
    posted = httpx.post(f"{api}/search", json={"query": "re-season a rusty pan", "types": ["webclip"], "k": 1}).json()
    assert posted["results"][0]["url"] == "https://example.org/kitchen/cast-iron-care"
    assert posted["filters"]["types"] == ["webclip"]


def test_limits_and_bad_requests(api):
    assert httpx.get(f"{api}/search", params={"q": "x", "k": 1000}).status_code == 422
    blank = httpx.post(f"{api}/search", json={"query": ""})  # refused by the library, in its words
    assert blank.status_code == 400 and blank.json()["detail"] == "the query is empty; say what to look for"
    assert httpx.post(f"{api}/search", json={"query": "x", "types": ["video"]}).status_code == 400
    big = httpx.post(f"{api}/search", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413


@pytest.mark.parametrize("path, statuses", [
    # Plain `..` segments are resolved by the client or the router before any handler (404); encoded
    # ones reach the handler, which refuses them (400). Either way nothing outside the roots is served.
    ("../secret.md", {404}), ("../../etc/passwd", {404}), ("Coffee/../../secret.md", {404}),
    ("..%2Fsecret.md", {400}), ("Coffee%2F..%2F..%2Fsecret.md", {400}), ("%2Fetc%2Fpasswd", {400}),
    ("nope.md", {404}), (".obsidian/app.json", {404}), ("pai-kb.toml", {404}),
])
def test_notes_stay_inside_the_roots(api, path, statuses):
    response = httpx.get(f"{api}/notes/{path}")
    assert response.status_code in statuses and "outside the vault" not in response.text


def test_note_text(api):
    note = httpx.get(f"{api}/notes/Coffee/Pour-over brewing.md").json()
    assert note["path"] == "Coffee/Pour-over brewing.md" and "Hario V60" in note["text"]
    clip = httpx.get(f"{api}/notes/Cast iron care.html", params={"root": "inbox"})
    assert clip.status_code == 200 and "flaxseed" in clip.json()["text"]


def test_related(api):
    data = httpx.get(f"{api}/related", params={"note": "Coffee/Pour-over brewing.md", "k": 3}).json()
    assert data["results"][0]["path"] == "Coffee/Espresso dialing in.md"
    missing = httpx.get(f"{api}/related", params={"note": "no such note"})
    assert missing.status_code == 404 and "is not in the index" in missing.json()["detail"]


def test_ask_json_and_streaming(kb):
    llm = FakeLLM().start()
    try:
        from pai_kb.kb import KnowledgeBase
        asker = KnowledgeBase(kb.config.replace(llm_base_url=llm.url), embedder=kb.embedder)
        url, server = start(create_app(asker))
        llm.replies += [Reply("Brew 2:45 to 3:15 [1]."), Reply("Streamed: brew 2:45 to 3:15 [1].")]
        plain = httpx.post(f"{url}/ask", json={"question": "how long should a pour-over brew take?"}).json()
        assert plain["grounded"] and plain["answer"] == "Brew 2:45 to 3:15 [1]."
        events = []
        with httpx.stream("POST", f"{url}/ask", json={"question": "how long should a pour-over brew take?",
                                                      "stream": True}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                elif line.startswith("data: "):
                    events[-1] = (events[-1], json.loads(line[6:]))
        tokens = "".join(data for kind, data in events if kind == "token")
        final = [data for kind, data in events if kind == "answer"][0]
        assert tokens == "Streamed: brew 2:45 to 3:15 [1]." and final["grounded"] is True
        server.should_exit = True
    finally:
        llm.stop()


def test_token_enforced(kb):
    url, server = start(create_app(kb, token=TOKEN))
    try:
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/search", params={"q": "coffee"}).status_code == 401
        wrong = httpx.get(f"{url}/search", params={"q": "coffee"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = httpx.get(f"{url}/search", params={"q": "coffee"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
    finally:
        server.should_exit = True


def test_non_loopback_needs_a_token(kb):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0 without a token"):
        listen("0.0.0.0", free_port(), None)


def test_mcp_over_stdio(kb):
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    c = kb.config
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "pai_kb", "--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir), "mcp"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def session_calls():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            info = await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            results = {}
            for name, args in [("search_notes", {"query": "what does the IoT VLAN allow?", "k": 2}),
                               ("ask", {"question": "how long should a pour-over brew take?"}),
                               ("get_note", {"path": "Homelab/Backups.md"}),
                               ("related_notes", {"note": "Pour-over brewing", "k": 3}),
                               ("recent_changes", {"limit": 5}),
                               ("get_note", {"path": "../secret.md"}),
                               ("get_note", {"path": "../../etc/passwd", "root": "vault"}),
                               ("get_note", {"path": "Backupz"}),
                               ("search_notes", {"query": "x", "mode": "psychic"})]:
                result = await session.call_tool(name, args)
                key = name
                while key in results:
                    key += "_bad"
                results[key] = result
            return info, tools, results

    info, tools, results = anyio.run(session_calls)
    assert set(tools) == {"search_notes", "ask", "get_note", "related_notes", "recent_changes", "status"}
    assert all(len(t.description) > 40 for t in tools.values())
    from importlib.metadata import version
    assert info.server_info.version == version("pai-kb")
    assert all(t.annotations.read_only_hint for t in tools.values())
    schema = tools["search_notes"].input_schema["properties"]
    assert set(schema["mode"]["enum"]) == {"hybrid", "dense", "keyword"} and schema["k"]["maximum"] == 50
    assert all(p.get("description") for t in tools.values() for p in t.input_schema["properties"].values())
    search = results["search_notes"].structured_content
    assert search["results"][0]["path"] == "Homelab/Home network.md" and search["results"][0]["line_start"] > 0
    answer = results["ask"].structured_content
    assert answer["grounded"] and answer["citations"][0]["path"] == "Coffee/Pour-over brewing.md"
    assert "restic" in results["get_note"].structured_content["text"]
    assert results["related_notes"].structured_content["results"][0]["path"] == "Coffee/Espresso dialing in.md"
    assert len(results["recent_changes"].structured_content["files"]) == 5

    def error_text(result):
        """The CLI's one-line message, after the SDK's own `Error executing tool NAME: ` framing."""
        assert result.is_error
        text = result.content[0].text
        assert text.count("\n") == 0 and text.startswith("Error executing tool ")
        return text.split(": ", 1)[1]

    assert error_text(results["get_note_bad"]) == "path must be relative to the vault or inbox, without '..'"
    assert error_text(results["get_note_bad_bad"]) == "path must be relative to the vault or inbox, without '..'"
    assert "did you mean 'Homelab/Backups.md'?" in error_text(results["get_note_bad_bad_bad"])
    # A value outside the schema's enum is refused by the SDK before pai-kb runs, naming the allowed values.
    refused = results["search_notes_bad"]
    assert refused.is_error and "mode" in refused.content[0].text and "'hybrid', 'dense' or 'keyword'" in refused.content[0].text
    assert "Traceback" not in "".join(r.content[0].text for k, r in results.items() if k.endswith("_bad"))


def test_cli_search_uses_a_running_server(kb, tmp_path):
    import subprocess
    c = kb.config
    base = ["--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir)]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pai_kb", *base, "serve", "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    try:
        record = c.index_dir / "server.json"
        deadline = time.monotonic() + 120
        while not record.exists():  # readiness is the record appearing: it is written only once the server answers
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.05)
        assert httpx.get(json.loads(record.read_text())["url"] + "/health").json() == {"status": "ok"}
        script = ("import json, sys\nfrom pai_kb.cli import main\n"
                  "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
                  "print(json.dumps({'chromadb': 'chromadb' in sys.modules, 'onnx': 'onnxruntime' in sys.modules}))")
        out = subprocess.run([sys.executable, "-c", script, *base, "search", "what does the IoT VLAN allow?",
                              "--json", "-k", "2"], capture_output=True, text=True, timeout=60)
        lines = out.stdout.strip().splitlines()
        assert json.loads(lines[0])["results"][0]["path"] == "Homelab/Home network.md"
        assert json.loads(lines[1]) == {"chromadb": False, "onnx": False}  # answered by the server
        local = subprocess.run([sys.executable, "-c", script, *base, "search", "what does the IoT VLAN allow?",
                                "--json", "-k", "2", "--local"], capture_output=True, text=True, timeout=60)
        # A local search loads the encoder itself, and reads vectors from the manifest, never chromadb.
        assert json.loads(local.stdout.strip().splitlines()[1]) == {"chromadb": False, "onnx": True}
        assert json.loads(local.stdout.strip().splitlines()[0])["results"] == json.loads(lines[0])["results"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert not (c.index_dir / "server.json").exists()  # removed on shutdown


def test_stale_server_record_falls_back_to_local(kb):
    from click.testing import CliRunner
    from pai_kb.cli import main
    c = kb.config
    (c.index_dir / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 999_999_999}))
    try:
        out = CliRunner().invoke(main, ["--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir),
                                        "search", "restic password", "--json", "-k", "1"])
        assert out.exit_code == 0 and json.loads(out.stdout)["results"][0]["path"] == "Homelab/Backups.md"
    finally:
        (c.index_dir / "server.json").unlink()


def test_a_starting_or_dead_server_means_a_local_search(kb):
    """A record whose process lives but whose port does not answer (a server still starting, or wedged)."""
    from click.testing import CliRunner
    from pai_kb.cli import main
    c = kb.config
    (c.index_dir / "server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": os.getpid()}))
    try:
        out = CliRunner().invoke(main, ["search", "restic password", "--json", "-k", "1", "--vault", str(c.vault),
                                        "--inbox", str(c.inbox), "--index", str(c.index_dir)])
        assert out.exit_code == 0 and json.loads(out.stdout)["results"][0]["path"] == "Homelab/Backups.md"
    finally:
        (c.index_dir / "server.json").unlink()


def test_docs_are_off_and_errors_have_documented_codes(api):
    assert httpx.get(f"{api}/docs").status_code == 404  # would load its scripts from a CDN
    bogus = httpx.get(f"{api}/notes/Homelab/Backups.md", params={"root": "bogus"})
    assert bogus.status_code == 400 and "unknown root 'bogus'" in bogus.json()["detail"]
    assert httpx.get(f"{api}/search", params={"q": "x", "mode": "psychic"}).status_code == 422
    by_title = httpx.get(f"{api}/notes/Backups:1-3")
    assert by_title.status_code == 200 and by_title.json()["path"] == "Homelab/Backups.md"
    assert by_title.json()["line_end"] == 3


def test_watch_serve_with_a_refused_bind_exits_with_one_line(kb):
    import subprocess
    c = kb.config
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "pai_kb", "watch", "--serve", "--port", str(port), "--vault",
                              str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir) + "-watch"],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: cannot listen on 127.0.0.1:{port} (Address already in use): pick another --port or "
                      "stop what uses it"] and "Traceback" not in out.stderr

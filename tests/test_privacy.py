"""What leaves the machine: notes marked `private: true` or matched by `privacy.local_only` are found here,
and never reach a model off this machine or an HTTP client off it; outputs say how many were held back."""

from __future__ import annotations

import socket

import httpx
import pytest

from conftest import make_kb
from fake_llm import FakeLLM, Reply
from pai_kb.privacy import is_loopback_host, leaves_machine

SECRET = "The spare lighthouse keys hang behind the tide clock in the boathouse."


def outward_ip() -> str:
    """An address of this machine that is not loopback (the one it would use to reach others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if is_loopback_host(address):
        pytest.skip("this machine has no address besides loopback to play an endpoint off the machine")
    return address


@pytest.fixture
def kb(tmp_path, embedder):
    vault = tmp_path / "vault"
    (vault / "Journal").mkdir(parents=True)
    (vault / "Journal" / "day.md").write_text("# Tuesday\n\nMoved the spare lighthouse keys behind the tide clock.\n")
    (vault / "Secret.md").write_text(f"---\nprivate: true\n---\n# Keys\n\n{SECRET}\n")
    (vault / "Public.md").write_text("# Harbour\n\nThe harbour master opens the gate at dawn for the boats.\n")
    kb = make_kb(tmp_path, vault, embedder, local_only=("Journal/**",))
    kb.index()
    yield kb
    kb.close()


def test_local_only_notes_are_found_on_this_machine_and_counted(kb):
    keys = {h.chunk.doc_key for h in kb.search("spare lighthouse keys tide clock", mode="keyword")}
    assert {"vault/Journal/day.md", "vault/Secret.md"} <= keys
    assert kb.status().local_only == 2
    assert kb.is_local_only("vault/Secret.md") and not kb.is_local_only("vault/Public.md")
    assert kb.note("Secret").text.endswith(SECRET + "\n")  # `get` on this machine shows it


def test_a_model_on_loopback_may_read_them(kb):
    llm = FakeLLM(default=Reply("Behind the tide clock [1].")).start()
    try:
        local = kb.config.replace(llm_base_url=llm.url)
        answer = type(kb)(local, embedder=kb.embedder).ask("where are the spare lighthouse keys?")
        assert answer.withheld == 0 and SECRET in str(llm.requests[0]["body"])
    finally:
        llm.stop()


def test_a_model_off_the_machine_never_gets_them(kb):
    llm = FakeLLM(default=Reply("The gate opens at dawn [1]."), host=outward_ip()).start()
    try:
        assert leaves_machine(llm.url)
        remote_kb = type(kb)(kb.config.replace(llm_base_url=llm.url), embedder=kb.embedder)
        answer = remote_kb.ask("when does the harbour master open the gate, and where are the lighthouse keys?")
        assert answer.withheld >= 1 and not answer.abstained
        sent = str(llm.requests)
        assert "harbour master" in sent and "tide clock" not in sent and "lighthouse keys hang" not in sent
        only_private = remote_kb.ask("spare lighthouse keys tide clock boathouse")
        assert only_private.withheld >= 1 and "tide clock" not in str(llm.requests)
    finally:
        llm.stop()


def test_an_http_client_off_the_machine_gets_no_local_only_text(kb):
    from helpers import start
    from pai_kb.server import create_app

    address = outward_ip()
    url, server = start(create_app(kb, token="t0ken", bind_host="0.0.0.0"), host="0.0.0.0")
    port = int(url.rsplit(":", 1)[1])
    headers = {"Authorization": "Bearer t0ken"}
    try:
        here = httpx.get(f"{url}/search", params={"q": "spare lighthouse keys", "mode": "keyword"}, headers=headers)
        assert here.json()["withheld"] == 0 and SECRET in here.text
        off = httpx.get(f"http://{address}:{port}/search", params={"q": "spare lighthouse keys", "mode": "keyword"},
                        headers={**headers, "Host": f"127.0.0.1:{port}"})
        assert off.status_code == 200 and off.json()["withheld"] == 2 and "tide clock" not in off.text
        note = httpx.get(f"http://{address}:{port}/notes/Secret", headers={**headers, "Host": f"127.0.0.1:{port}"})
        assert note.status_code == 404 and "local-only" in note.json()["detail"] and "tide clock" not in note.text
        asked = httpx.post(f"http://{address}:{port}/ask", json={"question": "spare lighthouse keys", "no_llm": True},
                           headers={**headers, "Host": f"127.0.0.1:{port}"})
        assert asked.json()["withheld"] >= 1 and "tide clock" not in asked.text
    finally:
        server.should_exit = True


def test_marks_follow_the_frontmatter_and_the_patterns(kb, tmp_path, embedder):
    (kb.config.vault / "Secret.md").write_text(f"# Keys\n\n{SECRET}\n")  # no longer private
    kb.index()
    assert not kb.is_local_only("vault/Secret.md")
    wider = make_kb(tmp_path, kb.config.vault, embedder, local_only=("Journal/**", "Public.md"))
    wider.index()  # nothing changed on disk: the new pattern alone marks the note
    assert wider.is_local_only("vault/Public.md") and wider.status().local_only == 2
    wider.close()

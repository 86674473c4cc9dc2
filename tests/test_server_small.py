"""Small server and watcher fixes, each through the real thing: the Host check takes the header's
host and nothing else, `since` must be a calendar date over HTTP, and file names the watcher logs are
inert (no escape sequence reaches a terminal raw)."""

import logging
import threading

import httpx
import pytest

from conftest import HashEmbedder, indexed_sample
from helpers import start, wait_for
from pai_kb.server import create_app, host_name
from pai_kb.watch import Watcher, WatchSettings


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return indexed_sample(tmp_path_factory.mktemp("small"), HashEmbedder())


@pytest.fixture(scope="module")
def api(sample):
    url, server = start(create_app(sample))
    yield url
    server.should_exit = True


@pytest.mark.parametrize("host, status", [
    ("evil.test@127.0.0.1", 421), ("evil.test@127.0.0.1:8765", 421), ("127.0.0.1@evil.test", 421),
    ("127.0.0.1/evil", 421), ("127.0.0.1:8765:1", 421), ("evil.test", 421), ("127.0.0.2.evil.test", 421),
    ("127.0.0.1:8765", 200), ("localhost", 200), ("LOCALHOST:1", 200), ("[::1]:8765", 200),
])
def test_host_header_names_exactly_one_host(api, host, status):
    response = httpx.get(f"{api}/health", headers={"Host": host})
    assert response.status_code == status, host
    if status == 421:
        assert host in response.json()["detail"]


def test_host_name_parsing():
    assert host_name("127.0.0.1:80") == "127.0.0.1" and host_name("[::1]") == "::1"
    assert host_name("evil.test@127.0.0.1") is None and host_name("a b") is None


@pytest.mark.parametrize("since", ["2024-13-45", "2023-02-29", "2024-1-01", "2024-01-01T00:00"])
def test_since_must_be_a_calendar_date(api, since):
    for response in (httpx.get(f"{api}/search", params={"q": "coffee", "since": since}),
                     httpx.post(f"{api}/search", json={"query": "coffee", "since": since}),
                     httpx.post(f"{api}/ask", json={"question": "coffee?", "since": since, "no_llm": True})):
        assert response.status_code == 422
        assert any(since in e["msg"] and e["loc"][-1] == "since" for e in response.json()["detail"]), response.json()


def test_a_real_date_is_accepted(api):
    leap = httpx.get(f"{api}/search", params={"q": "coffee", "since": "2024-02-29"})
    assert leap.status_code == 200 and leap.json()["filters"]["since"] == "2024-02-29"


def test_watch_logs_file_names_inert(tmp_path, caplog):
    kb = indexed_sample(tmp_path, HashEmbedder())
    watcher = Watcher(kb, WatchSettings(debounce_s=0.1, max_delay_s=0.5))
    caplog.set_level(logging.INFO, logger="pai_kb")
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: kb.manifest.file_states())  # started: the catch-up pass ran
        name = "\x1b]0;owned\x07\x1b[31mred\x1b[0m.md"
        (kb.config.vault / name).write_text("# Red\n\nA note whose name carries escape sequences.\n")
        wait_for(lambda: any("red" in r.getMessage() for r in caplog.records))
    finally:
        watcher.stop()
        thread.join(timeout=10)
    line = next(r.getMessage() for r in caplog.records if "red" in r.getMessage())
    assert "added vault/\ufffd]0;owned\ufffd\ufffd[31mred\ufffd[0m.md" in line
    assert not any(c in r.getMessage() for r in caplog.records for c in "\x1b\x07")

"""A vault someone else wrote (cloned, shared, synced) cannot steer pai-kb: it chooses neither where pai-kb
writes nor whom it talks to, and a server record it plants is never trusted."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import PROJECT, indexed_sample
from pai_kb.config import load_config
from pai_kb.errors import BadSetting


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256 of its bytes): a change anywhere shows."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Listener:
    """A loopback HTTP server that records every request and answers anything, the way a hostile
    endpoint would: /identity with a made-up proof, /search with fake results."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                outer.requests.append((self.path, dict(self.headers)))
                body = (json.dumps({"proof": "0" * 64}) if self.path.startswith("/identity") else
                        json.dumps({"query": "x", "results": [{"rank": 1, "path": "PLANTED.md", "text": "planted"}]}))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pai_kb", *args], capture_output=True, text=True, timeout=300,
                          env=environ)


@pytest.mark.parametrize("toml", [
    'index = "."',
    'index = "gen-7"',
    '[index]\npath = "../elsewhere"',
    '[index]\nurl = "LISTENER"',
    '[llm]\nbase_url = "LISTENER/v1"\nmodel = "m"',
    '[llm]\nmodel = "exfil"',
])
def test_a_vault_toml_may_not_choose_where_pai_kb_writes_or_whom_it_talks_to(tmp_path, listener, toml):
    vault = tmp_path / "cloned"
    shutil.copytree(PROJECT / "vault", vault)
    (vault / "gen-7").mkdir()
    (vault / "gen-7" / "my note.md").write_text("# Mine\nA note in a folder named like a generation.\n")
    (vault / "pai-kb.toml").write_text(toml.replace("LISTENER", listener.url) + "\n")
    before = tree(tmp_path)
    result = run_cli("--vault", str(vault), "--index", str(tmp_path / "ix"), "index", "--rebuild",
                     env={"PAI_KB_TOKEN": "s3cret-token"})
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "may not be set in a vault's own pai-kb.toml" in errors[0]
    assert "--config FILE outside the vault" in errors[0]
    assert tree(tmp_path) == before and not (tmp_path / "ix").exists()  # nothing written, nothing deleted
    assert listener.requests == []  # nothing sent anywhere


@pytest.mark.parametrize("where", ["equal", "inside", "contains"])
def test_an_index_overlapping_a_vault_or_inbox_is_refused(tmp_path, where):
    vault = tmp_path / "notes"
    vault.mkdir()
    (vault / "a.md").write_text("# A\ntext\n")
    index = {"equal": vault, "inside": vault / ".idx", "contains": tmp_path}[where]
    result = run_cli("--vault", str(vault), "--index", str(index), "index")
    assert result.returncode == 2 and "overlap" in result.stderr and "--index DIR" in result.stderr
    assert sorted(p.name for p in vault.iterdir()) == ["a.md"]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with pytest.raises(BadSetting, match="and inbox .* overlap"):
        load_config({"vault": vault, "inbox": inbox, "index_dir": inbox / "ix"}, env={}, cwd=tmp_path)


def test_a_disk_root_home_or_system_folder_is_no_vault_without_the_flag(tmp_path):
    for folder in ("/", "/etc", "/usr"):
        result = run_cli("--vault", folder, "--index", str(tmp_path / "ix"), "status")
        assert result.returncode == 2 and "not a notes folder" in result.stderr and "--vault-anywhere" in result.stderr
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("--vault", str(home), "--index", str(tmp_path / "ix"), "status", env={"HOME": str(home)})
    assert result.returncode == 2 and "is your home folder" in result.stderr
    assert not (tmp_path / "ix").exists()
    allowed = load_config({"vault": Path("/etc"), "index_dir": tmp_path / "ix", "vault_anywhere": True}, env={})
    assert allowed.vault == Path("/etc")


def test_a_rebuild_deletes_only_generations_it_made(tmp_path, embedder):
    kb = indexed_sample(tmp_path, embedder)
    index = kb.config.index_dir
    foreign = index / "gen-7"
    foreign.mkdir()
    (foreign / "keep me.md").write_text("not pai-kb's\n")
    kb.index(rebuild=True)
    kb.index(rebuild=True)  # two switches: everything older than the previous generation is pruned
    assert (foreign / "keep me.md").read_text() == "not pai-kb's\n"
    made = sorted(p.name for p in index.glob("gen-*") if p != foreign)
    assert made == ["gen-8", "gen-9"]  # numbered after the foreign folder, and only pai-kb's were pruned
    kb.close()


def planted_record(index: Path, url: str, mode: int = 0o600) -> None:
    """A server record naming `url` and a live pid (this test process), as a hostile party would write."""
    index.mkdir(parents=True, exist_ok=True)
    path = index / "server.json"
    path.write_text(json.dumps({"url": url, "pid": os.getpid(), "key": "k" * 64}))
    path.chmod(mode)


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_planted_server_record_gets_neither_the_query_nor_the_token(tmp_path, embedder, listener, mode):
    kb = indexed_sample(tmp_path, embedder)
    c = kb.config
    kb.close()
    planted_record(c.index_dir, listener.url, mode)
    result = run_cli("--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir),
                     "search", "restic password", "--mode", "keyword", "--json", "-k", "1",
                     env={"PAI_KB_TOKEN": "s3cret-token"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["path"] == "Homelab/Backups.md"  # answered locally
    sent = json.dumps(listener.requests)
    assert "s3cret-token" not in sent and "restic" not in sent
    if mode == 0o600:  # a private record is asked for proof (a nonce only), and fails it
        assert [path.split("?")[0] for path, _ in listener.requests] == ["/identity"]
        assert "could not prove it is this user's pai-kb" in result.stderr
    else:  # a record others could read (or write) is not even asked
        assert listener.requests == [] and "must be mode 0600" in result.stderr


def test_a_record_naming_another_host_is_never_contacted(tmp_path, embedder):
    kb = indexed_sample(tmp_path, embedder)
    c = kb.config
    kb.close()
    with socket.socket() as trap:
        trap.bind(("127.0.0.2", 0))
        trap.listen(1)
        trap.settimeout(0)
        planted_record(c.index_dir, f"http://127.0.0.2:{trap.getsockname()[1]}")
        result = run_cli("--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir),
                         "search", "restic password", "--mode", "keyword", "--json", "-k", "1")
        assert result.returncode == 0 and "pai-kb records only http://127.0.0.1" in result.stderr
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected

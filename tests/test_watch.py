"""The watcher against real watchdog events on real temp directories."""

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import HashEmbedder, make_kb
from helpers import running, snapshot, wait_for
from pai_kb.errors import IndexLockedError

WORKER = Path(__file__).parent / "watch_worker.py"


@pytest.fixture
def watching(tmp_path, vault, embedder):
    (tmp_path / "inbox").mkdir()
    kb = make_kb(tmp_path, vault, embedder)
    with running(kb):
        yield kb, vault, tmp_path / "inbox"


def found(kb, word: str) -> set[str]:
    return {h.chunk.path for h in kb.search(word, k=10, mode="keyword")}


def keys(kb) -> set[str]:
    return set(kb.manifest.file_states())


def test_create_modify_delete(watching):
    kb, vault, inbox = watching
    note = vault / "fresh.md"
    note.write_text("# Fresh\n\nThe word plumbago appears here.\n")
    wait_for(lambda: found(kb, "plumbago") == {"fresh.md"})
    note.write_text("# Fresh\n\nNow it says xylophone instead.\n")
    wait_for(lambda: found(kb, "xylophone") == {"fresh.md"} and not found(kb, "plumbago"))
    note.unlink()
    wait_for(lambda: "vault/fresh.md" not in keys(kb))
    assert not found(kb, "xylophone")


def test_rename_and_folder_move(watching):
    kb, vault, _ = watching
    (vault / "Coffee/Pour-over brewing.md").rename(vault / "Coffee/V60 method.md")
    wait_for(lambda: "vault/Coffee/V60 method.md" in keys(kb) and "vault/Coffee/Pour-over brewing.md" not in keys(kb))
    shutil.move(str(vault / "Homelab"), str(vault / "Infrastructure"))
    wait_for(lambda: "vault/Infrastructure/Backups.md" in keys(kb) and not any(k.startswith("vault/Homelab/") for k in keys(kb)))
    assert found(kb, "restic") == {"Infrastructure/Backups.md"}


def test_atomic_save_backups_and_swap_files(watching):
    kb, vault, _ = watching
    target = vault / "Running plan.md"
    tmp = vault / ".Running plan.md.tmp-123"
    tmp.write_text("# Running plan\n\nReplaced atomically: marathon glycogen.\n")
    os.replace(tmp, target)  # what many editors do: watchdog sees only a move onto the note
    wait_for(lambda: found(kb, "glycogen") == {"Running plan.md"})
    (vault / "Running plan.md~").write_text("vim backup mentions quokka")
    (vault / ".Running plan.md.swp").write_text("swap mentions quokka")
    (vault / "Home.md.tmp").write_text("temp mentions quokka")
    (vault / "trigger.md").write_text("# Trigger\n\nlast event wombat\n")
    wait_for(lambda: found(kb, "wombat"))
    assert not found(kb, "quokka")


def test_file_in_new_folder_and_inbox(watching):
    kb, vault, inbox = watching
    folder = vault / "Projects" / "Deep"
    folder.mkdir(parents=True)
    (folder / "plan.md").write_text("# Plan\n\nzeppelin schedule\n")
    (inbox / "talk.vtt").write_text("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nthe talk says quasar\n")
    wait_for(lambda: found(kb, "zeppelin") == {"Projects/Deep/plan.md"} and found(kb, "quasar") == {"talk.vtt"})
    shutil.rmtree(vault / "Projects")
    wait_for(lambda: not found(kb, "zeppelin"))


def test_bad_file_is_skipped_and_watching_goes_on(watching):
    kb, vault, _ = watching
    (vault / "broken.md").write_bytes(b"\x00\x01binary")
    (vault / "after.md").write_text("# After\n\nnarwhal\n")
    wait_for(lambda: found(kb, "narwhal"))
    assert "vault/broken.md" in kb.manifest.file_errors()


def test_burst_of_1000_then_500_deleted(watching):
    kb, vault, _ = watching
    burst = vault / "burst"
    burst.mkdir()
    for i in range(1000):
        (burst / f"n{i:04d}.md").write_text(f"# N{i}\n\nburst note number {i}\n")
    wait_for(lambda: sum(k.startswith("vault/burst/") for k in keys(kb)) == 1000, timeout=120)
    for i in range(0, 1000, 2):
        (burst / f"n{i:04d}.md").unlink()
    wait_for(lambda: sum(k.startswith("vault/burst/") for k in keys(kb)) == 500, timeout=60)
    assert {k for k in keys(kb) if k.startswith("vault/burst/")} == {f"vault/burst/n{i:04d}.md" for i in range(1, 1000, 2)}


def test_second_writer_refused_while_watching(watching):
    kb, vault, _ = watching
    other = make_kb(vault.parent, vault, HashEmbedder())
    with pytest.raises(IndexLockedError, match="being written by pid"):
        other.index()


def start_worker(vault, inbox, index_dir, delay="0"):
    """A watcher process whose stdout lines arrive in `proc.lines`, once it said it started."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(vault), str(inbox), str(index_dir), delay],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.lines = queue.Queue()
    threading.Thread(target=lambda: [proc.lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    wait_line(proc, "started")
    return proc


def wait_line(proc, prefix: str, timeout: float = 120.0) -> str:
    """The worker's next stdout line starting with `prefix` (earlier others are skipped), within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and proc.poll() is None, f"the worker never said {prefix!r}"
        try:
            line = proc.lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if line.startswith(prefix):
            return line


def test_sigterm_stops_within_2_seconds(tmp_path, vault):
    (tmp_path / "inbox").mkdir()
    proc = start_worker(vault, tmp_path / "inbox", tmp_path / "index", delay="0.01")
    wait_line(proc, "batch")
    for i in range(60):
        (vault / f"late{i}.md").write_text(f"# Late {i}\n\n" + "words " * 400)
    wait_line(proc, "embedding")  # readiness: a batch of the new notes is in flight
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert time.monotonic() - sent < 2.0 and proc.returncode == 0
    kb = make_kb(tmp_path, vault, HashEmbedder())
    kb.index()
    assert snapshot(kb) == snapshot(make_kb_fresh(tmp_path, vault))


def make_kb_fresh(tmp_path, vault):
    kb = make_kb(tmp_path / "fresh", vault, HashEmbedder())
    kb.index()
    return kb


def busy_worker(tmp_path, vault, prefix: str, notes: int, words: int):
    """A watcher process (0.02 s per embedded text) that has caught up, then handed a burst of notes."""
    (tmp_path / "inbox").mkdir()
    proc = start_worker(vault, tmp_path / "inbox", tmp_path / "index", delay="0.02")
    wait_line(proc, "batch")
    for i in range(notes):
        (vault / f"{prefix}{i}.md").write_text(f"# {prefix} {i}\n\n" + f"{prefix} words {i} " * words)
    return proc


def test_kill_9_mid_batch_then_restart(tmp_path, vault):
    proc = busy_worker(tmp_path, vault, "gen", 80, 100)
    wait_line(proc, "embedding")  # readiness: the burst's first batch is being embedded
    proc.kill()
    proc.wait()
    proc = start_worker(vault, tmp_path / "inbox", tmp_path / "index")
    wait_line(proc, "batch")  # the start-up reconciliation repaired and caught up
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    kb = make_kb(tmp_path, vault, HashEmbedder())
    assert {(k, t) for k, _, t in snapshot(kb)} == {(k, t) for k, _, t in snapshot(make_kb_fresh(tmp_path, vault))}


def test_watch_command_end_to_end(tmp_path, vault):
    """`pai-kb watch` itself, real model: logs a line per batch on stderr and stops on SIGTERM."""
    index_dir = tmp_path / "index"
    cmd = [sys.executable, "-m", "pai_kb", "--vault", str(vault), "--inbox", str(tmp_path / "none"),
           "--index", str(index_dir), "watch", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert '"watching' in proc.stderr.readline()
        lines = [proc.stderr.readline() for _ in range(2)]  # the broken-YAML sample's warning, then the batch
        assert "not valid YAML" in lines[0] and '"level": "warning"' in lines[0]
        assert "synced 17 added" in lines[1] and '"level": "info"' in lines[1]
        (vault / "live.md").write_text("# Live\n\nA note about the okapi.\n")
        line = proc.stderr.readline()
        assert "synced 1 added" in line and '"message"' in line and "added vault/live.md" in line
        kb = make_kb(tmp_path, vault, None, inbox=tmp_path / "none")
        assert found(kb, "okapi") == {"live.md"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0 and "stopped" in proc.stderr.read()


def test_watch_serve_answers_while_following_changes(tmp_path, vault):
    """`pai-kb watch --serve`: one process that keeps the index in step and answers HTTP searches."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "pai_kb", "--vault", str(vault), "--inbox", str(tmp_path / "none"),
           "--index", str(tmp_path / "index"), "watch", "--serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def search(q: str) -> list[str]:
        try:
            return [r["path"] for r in httpx.get(f"{url}/search", params={"q": q, "mode": "keyword"}).json()["results"]]
        except (httpx.HTTPError, ValueError, KeyError):
            return []

    try:
        wait_for(lambda: "Homelab/Backups.md" in search("restic"), timeout=60)
        (vault / "served.md").write_text("# Served\n\nThe capybara note.\n")
        wait_for(lambda: search("capybara") == ["served.md"], timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_model_loads_at_start_not_on_the_first_change(tmp_path, vault):
    make_kb(tmp_path, vault, HashEmbedder()).index()
    embedder = HashEmbedder()
    with running(make_kb(tmp_path, vault, embedder)) as (_, batches):
        assert batches[0].added == 0 and len(embedder.embedded) == 1  # nothing changed, yet the model ran once


def test_sigint_stops_within_a_second_mid_batch(tmp_path, vault):
    proc = busy_worker(tmp_path, vault, "slow", 200, 300)
    reader = make_kb(tmp_path, vault, HashEmbedder())

    def slow_indexed() -> int:
        return sum(k.startswith("vault/slow") for k in reader.manifest.file_states())

    wait_for(lambda: 0 < slow_indexed(), timeout=60)  # readiness: the watcher is part-way through the burst
    assert slow_indexed() < 200
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert time.monotonic() - sent < 1.0 and proc.returncode == 0
    kb = make_kb(tmp_path, vault, HashEmbedder())
    assert {(k, t) for k, _, t in snapshot(kb)} < {(k, t) for k, _, t in snapshot(make_kb_fresh(tmp_path, vault))}


def test_watcher_pauses_when_the_vault_vanishes_and_resumes(tmp_path, embedder):
    vault = tmp_path / "vault"
    vault.mkdir()
    for i in range(5):
        (vault / f"n{i}.md").write_text(f"# N{i}\n\nword{i}\n")
    kb = make_kb(tmp_path, vault, embedder)
    with running(kb) as (watcher, _):
        away = tmp_path / "unmounted"
        vault.rename(away)
        wait_for(lambda: watcher.paused is not None)
        assert "vault folder" in watcher.paused and len(keys(kb)) == 5  # nothing was deleted
        away.rename(vault)
        wait_for(lambda: watcher.paused is None)
        (vault / "back.md").write_text("# Back\n\nThe wombat returns.\n")
        wait_for(lambda: found(kb, "wombat") == {"back.md"})
        assert len(keys(kb)) == 6


def test_a_standing_warning_is_logged_once_not_with_every_batch(tmp_path, vault, embedder, caplog):
    """An exclude pattern that matches nothing is a warning of every sync; the watcher says it when it
    appears, not again with each save, and says it again once it has gone away and come back."""
    (tmp_path / "inbox").mkdir()
    kb = make_kb(tmp_path, vault, embedder, exclude=("Nowhere/",))
    said = lambda: [r for r in caplog.records if 'exclude pattern "Nowhere/"' in r.getMessage()]  # noqa: E731
    with caplog.at_level("WARNING", logger="pai_kb"), running(kb) as (_, batches):
        wait_for(said, 30, "the warning about the pattern")
        for n in range(3):
            (vault / f"edit{n}.md").write_text(f"# Edit {n}\n\nquokka{n}\n")
            wait_for(lambda n=n: found(kb, f"quokka{n}"), 30, f"edit {n} indexed")
        assert len(said()) == 1 and len(batches) >= 4
        (vault / "Nowhere").mkdir()
        (vault / "Nowhere" / "hidden.md").write_text("# Hidden\n\nplatypus\n")
        (vault / "seen.md").write_text("# Seen\n\nechidna\n")
        wait_for(lambda: found(kb, "echidna"), 30, "the pattern excluding a file")
        assert not found(kb, "platypus")
        shutil.rmtree(vault / "Nowhere")
        wait_for(lambda: len(said()) == 2, 30, "the warning again, once the pattern matches nothing again")


"""No store is written that nothing reads: every table and column the manifest writes is read by some
command (seen by SQLite's own authorizer over a sync, a re-sync, every search mode, ask, related, get,
status, materialize and eval --self), and the embedded index folder holds nothing but the manifest."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import indexed_sample
from pai_kb.models import SearchRequest

READ, WRITE = sqlite3.SQLITE_READ, (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE)


@pytest.fixture
def seen(monkeypatch):
    """(table, column) pairs read, and tables written, by every SQLite connection opened meanwhile."""
    reads: set[tuple[str, str]] = set()
    writes: set[str] = set()
    connect = sqlite3.connect

    def watch(action, table, column, _db, _trigger):
        if action == READ and table:
            reads.add((table, column or ""))
        elif action in WRITE and table:
            writes.add(table)
        return sqlite3.SQLITE_OK

    def watched_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_authorizer(watch)
        return db

    monkeypatch.setattr(sqlite3, "connect", watched_connect)
    return reads, writes


def test_every_table_and_column_written_is_read(tmp_path, embedder, seen):
    reads, writes = seen
    kb = indexed_sample(tmp_path, embedder)
    note = kb.config.vault / "Coffee" / "Pour-over brewing.md"
    note.write_text(note.read_text() + "\nBloom for 40 seconds first.\n")
    (kb.config.vault / "Home.md").rename(kb.config.vault / "Start.md")
    kb.index()
    for mode in ("hybrid", "dense", "keyword"):
        kb.search(SearchRequest.of("review just before you forget", mode=mode, types=["transcript", "note"],
                                   since="2000-01-01"))
    kb.search(SearchRequest.of("coffee", tags=["coffee"], path="Coffee/*"))
    kb.ask("how long should a pour-over brew take?", use_llm=False)
    kb.related("Pour-over brewing")
    kb.note("Pour-over brewing")
    kb.status()
    kb.recent(5)
    kb.materialize()
    kb.materialize()  # the second run reads what the first recorded
    kb.self_evaluate(["keyword"], limit=5)
    schema = sqlite3.connect(kb.config.index_dir / "gen-1" / "manifest.sqlite3")
    kb.close()
    plain = {name for (name,) in schema.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND sql NOT LIKE 'CREATE VIRTUAL%' AND name NOT LIKE 'chunks_%'")}
    written = writes & (plain | {"chunks_fts", "chunks_seg"})
    assert {"files", "chunks", "meta", "chunks_fts", "chunks_seg", "materialized"} <= written
    for table in sorted(written):
        assert any(t == table for t, _ in reads), f"table {table} is written and never read"
    for table in sorted(written & plain):
        columns = {row[1] for row in schema.execute(f"PRAGMA table_info({table})")}
        unread = columns - {c for t, c in reads if t == table}
        assert not unread, f"{table} columns written and never read: {sorted(unread)}"


def test_an_embedded_index_folder_holds_only_the_manifest(tmp_path, embedder):
    kb = indexed_sample(tmp_path, embedder)
    kb.search("coffee", mode="hybrid")
    kb.close()
    found = {p.relative_to(kb.config.index_dir).as_posix() for p in kb.config.index_dir.rglob("*") if p.is_file()}
    expected = {"CURRENT", "gen-1/.pai-kb-generation", "gen-1/manifest.sqlite3"}
    assert expected <= found
    assert found - expected <= {"write.lock", "gen-1/manifest.sqlite3-wal", "gen-1/manifest.sqlite3-shm"}, found

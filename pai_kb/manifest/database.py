"""The manifest's database: one SQLite file per generation, its schema, connections (one per thread) and
transactions, the `meta` table (fingerprint, roots, `version`), and the one batching helper for
`IN (...)` lists."""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from pai_kb.models import slices

__all__ = ["ROWID_TABLES", "SCHEMA_VERSION", "Database", "batched"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    doc_key TEXT PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    content_hash TEXT NOT NULL, title TEXT, source_type TEXT, links TEXT, error TEXT,
    doc_date TEXT, copy_of TEXT, indexed_at REAL NOT NULL, ctime_ns INTEGER NOT NULL DEFAULT 0,
    inode INTEGER NOT NULL DEFAULT 0, recheck INTEGER NOT NULL DEFAULT 0,
    private INTEGER NOT NULL DEFAULT 0, local_only INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc_key TEXT NOT NULL, ordinal INTEGER NOT NULL,
    title TEXT, heading TEXT, text TEXT, embed_hash TEXT NOT NULL, line_start INTEGER, line_end INTEGER,
    tags TEXT, aliases TEXT, source_type TEXT, url TEXT, start_s REAL, end_s REAL, moments BLOB);
CREATE TABLE IF NOT EXISTS vectors(rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_key, source_type, id);
CREATE INDEX IF NOT EXISTS chunks_embed ON chunks(embed_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, aliases, heading, text, tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_seg USING fts5(
    title, aliases, heading, text, tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS orphans(id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS materialized(source TEXT PRIMARY KEY, note_path TEXT NOT NULL, written_hash TEXT NOT NULL);
"""
# Part of the index fingerprint: a manifest written with another schema must be rebuilt, not read.
# 7: transcript chunks carry their cues' vectors (`moments`). 8: vectors in their own table, under their chunk's
# rowid, so reading them all (dense search's matrix) reads 1.5 KB a chunk, not the whole chunk table with its text;
# and chunks indexed by (doc_key, source_type, id), so a filter finds its chunk ids without reading chunk rows
# (a path filter at 100,000 chunks: 5 ms, was 59).
SCHEMA_VERSION = 8
# The two keyword tables (see `ranking`): every chunk has a row in each, under the chunk's rowid.
_KEYWORD_TABLES = ("chunks_fts", "chunks_seg")
# Every table whose rows are a chunk's, under the chunk's rowid: written and deleted with it.
ROWID_TABLES = ("vectors", *_KEYWORD_TABLES)
# SQLite binds at most 999 parameters in old builds; 500 per statement stays well inside.
BATCH = 500


def batched(items: Sequence[str], size: int = BATCH) -> Iterator[tuple[list[str], str]]:
    """(a slice of `items`, its `?,?,...` placeholders) for `IN (...)`, `size` at a time."""
    for part in slices(items, size):
        yield part, ",".join("?" * len(part))


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (sqlite3.Connection itself cannot)."""


class Database:
    """Connections, schema, transactions and `meta`; the other parts of the manifest build on it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        # Weak: a connection lives as long as its thread, so a server's short-lived worker threads
        # never pile up open connections; close() closes whatever is still open.
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        if not self._read_only():  # a read-only index is read as it is, whatever schema wrote it
            self._db.executescript(_SCHEMA)
            _add_stat_columns(self._db)
        # Where vectors are read: their own table, or, in a generation written before schema 8 (still
        # answering while its successor is built), the chunks' own column. Both have `rowid` and `vector`.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(chunks)")}
        self.vector_table = "chunks" if "vector" in columns else "vectors"

    @property
    def _db(self) -> sqlite3.Connection:
        """One connection per thread: the HTTP server answers requests on many threads at once, and a
        shared connection would interleave their statements (and make one slow request block all)."""
        db = getattr(self._local, "db", None)
        if db is None and self._read_only():
            # A read-only folder (media, a full or remounted disk): WAL cannot make its shared-memory file
            # there, so the index is opened as the unchanging file it is, and searches keep working.
            db = sqlite3.connect(f"file:{urllib.parse.quote(str(self.path))}?immutable=1", uri=True,
                                 isolation_level=None, check_same_thread=False, factory=_Connection)
            self._local.db = db
            self._opened.add(db)
        if db is None:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30,
                                 factory=_Connection)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            self._opened.add(db)
        return db

    def _read_only(self) -> bool:
        """Whether the database exists in a folder this process cannot write (media, a full or remounted
        disk): it is then opened as an unchanging file."""
        return self.path.exists() and not os.access(self.path.parent, os.W_OK)

    def close(self) -> None:
        """Close every connection this manifest opened, on any thread; the next use opens a new one."""
        for db in list(self._opened):
            db.close()
        self._local = threading.local()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one state of the database (a read transaction), on this thread's
        connection; inside a transaction already open, that one."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` ... `COMMIT` on this thread's connection, yielding it; rolled back when the
        block raises (waits up to 30 s for another writer)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """The `meta` value stored under `key`, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Its own transaction: meta values are flags and records, each meaningful alone."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        """Remove `key` from `meta`, in its own transaction."""
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def version(self) -> str | None:
        """Changes with every write of chunks, in whatever process: a reader's cue to reload."""
        return self.get_meta("version")


def _add_stat_columns(db: sqlite3.Connection) -> None:
    """An index written before files kept ctime, inode and recheck gets the columns in place (zero):
    its files then differ by stat once, and the next sync re-reads them and re-embeds nothing."""
    have = {row[1] for row in db.execute("PRAGMA table_info(files)")}
    for column in ("ctime_ns", "inode", "recheck", "private", "local_only"):
        if column not in have:
            db.execute(f"ALTER TABLE files ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


def _bump_version(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO meta(key, value) VALUES ('version', lower(hex(randomblob(8)))) "
               "ON CONFLICT(key) DO UPDATE SET value = lower(hex(randomblob(8)))")

"""The manifest: one SQLite database that is the index's source of truth.

It maps every file to its stat and content hash and its chunk ids, holds chunk text, citation fields and
vectors (float32), the keyword (FTS5) index, the index fingerprint, and a journal of vector ids that may
exist in Chroma without being committed here (`orphans`). Because chunks, their vectors and the keyword
index change in the same SQLite transaction, they can never disagree; Chroma is repaired from the
journal. Every write of chunks moves `version`, so readers in other processes know to reload.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
import weakref
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pai_kb.keyword import Tier, fts_term, parse, segmented, tiers
from pai_kb.models import Chunk, DocKey, Filters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    doc_key TEXT PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    content_hash TEXT NOT NULL, title TEXT, source_type TEXT, links TEXT, error TEXT,
    doc_date TEXT, copy_of TEXT, indexed_at REAL NOT NULL, ctime_ns INTEGER NOT NULL DEFAULT 0,
    inode INTEGER NOT NULL DEFAULT 0, recheck INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc_key TEXT NOT NULL, ordinal INTEGER NOT NULL,
    title TEXT, heading TEXT, text TEXT, embed_hash TEXT NOT NULL, line_start INTEGER, line_end INTEGER,
    tags TEXT, aliases TEXT, source_type TEXT, url TEXT, start_s REAL, end_s REAL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_key);
CREATE INDEX IF NOT EXISTS chunks_embed ON chunks(embed_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, aliases, heading, text, tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_seg USING fts5(
    title, aliases, heading, text, tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS orphans(id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS materialized(source TEXT PRIMARY KEY, note_path TEXT NOT NULL, written_hash TEXT NOT NULL);
"""
# Part of the index fingerprint: a manifest written with another schema must be rebuilt, not read.
SCHEMA_VERSION = 6
_TABLES = ("meta", "files", "chunks", "chunks_fts", "chunks_seg", "orphans", "materialized")
_CHUNK_COLS = ("id, doc_key, ordinal, title, heading, text, line_start, line_end, tags, aliases, "
               "source_type, url, start_s, end_s")
# Title and aliases are what a note says it is about: a match there outweighs one in the body.
# `chunks_seg` holds, column for column, the identifiers and CJK bigrams of the same chunk
# (`keyword.segmented`): a table of its own, because FTS5's BM25 normalises by the length of the whole
# row, and these tokens in `chunks_fts` would move every English score. A row's score is the sum of both.
_WEIGHTS = "4.0, 4.0, 2.0, 1.0"
_KEYWORD_TABLES = ("chunks_fts", "chunks_seg")
# The rows either keyword table matches for an FTS5 expression (given twice).
_MATCHING = " UNION ".join(f"SELECT rowid FROM {t} WHERE {t} MATCH ?" for t in _KEYWORD_TABLES)


@dataclass(frozen=True)
class DocInfo:
    """What the manifest keeps about a file besides its chunks."""
    title: str
    source_type: str = "note"
    links: Sequence[str] = ()
    date: str | None = None  # ISO date the material is from: its own date if it says, else its mtime
    error: str | None = None
    copy_of: str | None = None  # the inbox item a materialised note was written from


def filter_sql(filters: Filters) -> tuple[str, list[str]]:
    """A WHERE fragment over `chunks c` joined with `files f`, and its parameters. No character of a
    filter is a wildcard except a path glob's own `*`, `?` and `[...]` (GLOB has no `%` or `_`)."""
    clauses: list[str] = []
    params: list[str] = []
    if filters.types:
        clauses.append(f"c.source_type IN ({','.join('?' * len(filters.types))})")
        params.extend(filters.types)
    for tag in filters.tags:
        # Obsidian tags are case-insensitive (here: ASCII letters, SQLite's lower()) and nested: #coffee
        # matches #coffee/espresso. A prefix compared with substr, not LIKE, whose `_` and `%` are wildcards.
        clauses.append("EXISTS (SELECT 1 FROM json_each(c.tags) t, (SELECT lower(?) AS want) w "
                       "WHERE lower(t.value) = w.want OR substr(lower(t.value), 1, length(w.want) + 1) = w.want || '/')")
        params.append(tag)
    if filters.path:
        clauses.append("f.path GLOB ?")
        params.append(filters.path)
    if filters.since:
        clauses.append("f.doc_date >= ?")
        params.append(filters.since)
    return (" AND ".join(clauses) or "1"), params


@dataclass(frozen=True)
class FileState:
    """What the index knows of a file: its stat when read (ns, bytes) and its content hash. With
    `recheck` the stat cannot vouch for the content (it was taken too close to a write, or a verify
    found a difference), so the next sync reads the file whatever its stat."""
    mtime_ns: int
    size: int
    content_hash: str
    ctime_ns: int = 0
    inode: int = 0
    recheck: bool = False


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        # Weak: a connection lives as long as its thread, so a server's short-lived worker threads
        # never pile up open connections; close() closes whatever is still open.
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._db.executescript(_SCHEMA)
        _add_stat_columns(self._db)

    @property
    def _db(self) -> sqlite3.Connection:
        """One connection per thread: the HTTP server answers requests on many threads at once, and a
        shared connection would interleave their statements (and make one slow request block all)."""
        db = getattr(self._local, "db", None)
        if db is None and self.path.exists() and not os.access(self.path.parent, os.W_OK):
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

    def close(self) -> None:
        for db in list(self._opened):
            db.close()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
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
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Its own transaction: meta values are flags and records, each meaningful alone."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- files ----------------------------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        rows = self._db.execute("SELECT doc_key, mtime_ns, size, content_hash, ctime_ns, inode, recheck FROM files")
        return {key: FileState(m, s, h, c, i, bool(r)) for key, m, s, h, c, i, r in rows}

    def file_errors(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT doc_key, error FROM files WHERE error IS NOT NULL"))

    def chunk_ids(self, doc_key: str) -> list[str]:
        rows = self._db.execute("SELECT id FROM chunks WHERE doc_key = ? ORDER BY ordinal", (doc_key,))
        return [r[0] for r in rows]

    def chunks_of(self, doc_key: str) -> list[Chunk]:
        rows = self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE doc_key = ? ORDER BY ordinal", (doc_key,))
        return [_chunk(r) for r in rows]

    def ids_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        hashes = list(hashes)
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(
                f"SELECT embed_hash, id FROM chunks WHERE embed_hash IN ({marks})", part))
        return found

    def write_document(self, db: sqlite3.Connection, doc_key: str, state: FileState, info: DocInfo,
                       chunks: Sequence[Chunk], embed_hashes: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        """Replace a file's row and all its chunks; call inside `transaction()`."""
        self.delete_document(db, doc_key)
        key = DocKey.parse(doc_key)
        db.execute("INSERT INTO files(doc_key, root, path, mtime_ns, size, content_hash, title, source_type, links, "
                   "error, doc_date, copy_of, indexed_at, ctime_ns, inode, recheck) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (doc_key, key.root, key.path, state.mtime_ns, state.size, state.content_hash, info.title, info.source_type,
                    json.dumps(list(info.links)), info.error, info.date, info.copy_of, time.time(), state.ctime_ns,
                    state.inode, int(state.recheck)))
        for chunk, embed_hash, vector in zip(chunks, embed_hashes, vectors, strict=True):
            cur = db.execute(
                "INSERT INTO chunks(id, doc_key, ordinal, title, heading, text, embed_hash, line_start, "
                "line_end, tags, aliases, source_type, url, start_s, end_s, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (chunk.id, doc_key, chunk.ordinal, chunk.title, chunk.heading, chunk.text, embed_hash,
                 chunk.line_start, chunk.line_end, json.dumps(list(chunk.tags)),
                 json.dumps(list(chunk.aliases)), chunk.source_type, chunk.url, chunk.start_s, chunk.end_s,
                 array("f", vector).tobytes()))
            fields = (chunk.title, " ".join(chunk.aliases), chunk.heading, chunk.text)
            db.execute("INSERT INTO chunks_fts(rowid, title, aliases, heading, text) VALUES (?, ?, ?, ?, ?)",
                       (cur.lastrowid, *fields))
            db.execute("INSERT INTO chunks_seg(rowid, title, aliases, heading, text) VALUES (?, ?, ?, ?, ?)",
                       (cur.lastrowid, *(segmented(f or "") for f in fields)))

    def delete_document(self, db: sqlite3.Connection, doc_key: str) -> None:
        _bump_version(db)
        for table in _KEYWORD_TABLES:
            db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM chunks WHERE doc_key = ?)", (doc_key,))
        db.execute("DELETE FROM chunks WHERE doc_key = ?", (doc_key,))
        db.execute("DELETE FROM files WHERE doc_key = ?", (doc_key,))

    def touch(self, db: sqlite3.Connection, states: Mapping[str, FileState]) -> None:
        """New stat and `recheck` flag for files whose content did not change (the content hash is
        kept); call inside `transaction()`."""
        db.executemany("UPDATE files SET mtime_ns = ?, size = ?, ctime_ns = ?, inode = ?, recheck = ? WHERE doc_key = ?",
                       [(s.mtime_ns, s.size, s.ctime_ns, s.inode, int(s.recheck), k) for k, s in states.items()])

    def forget_documents(self, db: sqlite3.Connection, doc_keys: Iterable[str]) -> list[str]:
        """Drop files from the manifest and journal their chunk ids; returns the ids journalled."""
        stale: list[str] = []
        for key in doc_keys:
            stale.extend(self.chunk_ids(key))
            self.delete_document(db, key)
        self.add_orphans(db, stale)
        return stale

    # -- orphan journal -------------------------------------------------------------------------
    def add_orphans(self, db: sqlite3.Connection, ids: Iterable[str]) -> None:
        db.executemany("INSERT OR IGNORE INTO orphans(id) VALUES (?)", ((i,) for i in ids))

    def orphans(self) -> list[str]:
        """Journal ids the manifest does not hold: vectors that must be deleted from the store."""
        rows = self._db.execute("SELECT o.id FROM orphans o LEFT JOIN chunks c ON c.id = o.id WHERE c.id IS NULL")
        return [r[0] for r in rows]

    def journal_size(self) -> int:
        return self._db.execute("SELECT count(*) FROM orphans").fetchone()[0]

    def clear_orphans(self, db: sqlite3.Connection, ids: Iterable[str] | None = None) -> None:
        if ids is None:
            db.execute("DELETE FROM orphans")
        else:
            db.executemany("DELETE FROM orphans WHERE id = ?", ((i,) for i in ids))

    # -- reading --------------------------------------------------------------------------------
    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        found: dict[str, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            marks = ",".join("?" * len(part))
            for row in self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE id IN ({marks})", part):
                found[row[0]] = _chunk(row)
        return found

    def keyword_search(self, query: str, k: int, filters: Filters = Filters(), complete: bool = False,
                       without: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the best `k` rows for `query`, best first: BM25 over the planned query
        (`keyword.plan`) in both keyword tables, summed; in a lookup, rows holding an identifier of the
        query first (`keyword.tiers`). With `complete` (a keyword-only search, where these are the only
        results), a plan that found fewer than `k` rows falls back to the plain OR. Columns in `without`
        are not searched."""
        parsed = parse(query)
        if not parsed.words:
            return []
        df, rows, segmented_df = self._frequencies(parsed.words)
        # Most English queries match nothing in chunks_seg: then it is left out, and the search costs what
        # it did before that table existed.
        reads_seg = parsed.identifiers or parsed.phrases or any(segmented_df.values())
        tables = _KEYWORD_TABLES if reads_seg else _KEYWORD_TABLES[:1]
        planned, full = tiers(parsed, df, rows), tiers(parsed, df, rows, budget=sys.maxsize)
        found = self._tiered(planned, k, filters, without, tables)
        if complete and len(found) < k and planned != full:
            found = self._tiered(full, k, filters, without, tables)
        return found

    def _tiered(self, searches: list[Tier], k: int, filters: Filters, without: tuple[str, ...],
                tables: tuple[str, ...]) -> list[tuple[str, float]]:
        """The results of each search in turn, up to `k` in all. An earlier tier's scores are raised by
        the best score of the later ones, so that scores fall in the order the results come."""
        groups: list[list[tuple[str, float]]] = []
        for tier in searches:
            wanted = k - sum(map(len, groups))
            if wanted <= 0:
                break
            groups.append(self._bm25(tier, wanted, filters, without, tables))
        stacked: list[tuple[str, float]] = []
        for group in reversed(groups):
            lift = stacked[0][1] if stacked else 0.0
            stacked[:0] = [(i, s + lift) for i, s in group]
        return stacked

    def _frequencies(self, words: list[str]) -> tuple[dict[str, int], int, dict[str, int]]:
        """How many rows hold each word, how many rows there are, and how many rows hold each word in
        `chunks_seg`; kept until the index changes."""
        version = self.version()
        cache = getattr(self._local, "df", None)
        if cache is None or cache[0] != version:
            cache = (version, {"": (self._db.execute("SELECT count(*) FROM chunks").fetchone()[0], 0)})
            self._local.df = cache
        counts = cache[1]
        for word in words:
            if word not in counts:
                term = fts_term(word)
                counts[word] = (
                    self._db.execute(f"SELECT count(*) FROM ({_MATCHING})", (term, term)).fetchone()[0],
                    self._db.execute("SELECT count(*) FROM chunks_seg WHERE chunks_seg MATCH ?", (term,)).fetchone()[0])
        return {w: counts[w][0] for w in words}, counts[""][0], {w: counts[w][1] for w in words}

    def _bm25(self, tier: Tier, k: int, filters: Filters, without: tuple[str, ...],
              tables: tuple[str, ...]) -> list[tuple[str, float]]:
        """The best `k` rows of one search: each row's BM25 in `tables` (keyword tables), summed."""
        scored = _within(tier.scored, without)
        params: list[str] = [scored] * len(tables)
        kept = []
        conditions = [(r, "IN") for r in tier.required] + ([(tier.excluded, "NOT IN")] if tier.excluded else [])
        for expression, condition in conditions:
            kept.append(f"rowid {condition} ({_MATCHING})")
            params.extend([_within(expression, without)] * 2)
        each = [f"SELECT rowid, bm25({t}, {_WEIGHTS}) AS score FROM {t} WHERE {t} MATCH ?" for t in tables]
        ranked = (f"SELECT rowid, sum(score) AS score FROM ({' UNION ALL '.join(each)}) GROUP BY rowid"
                  if len(each) > 1 else each[0])
        if kept:
            ranked = f"SELECT * FROM ({ranked}) WHERE {' AND '.join(kept)}"
        if not filters.active:
            # Ranking before the join, which then fetches only the top k, is about twice as fast.
            rows = self._db.execute(f"SELECT c.id, -s.score FROM ({ranked} ORDER BY score LIMIT ?) s "
                                    "JOIN chunks c ON c.rowid = s.rowid ORDER BY s.score", (*params, k))
            return [(i, float(s)) for i, s in rows]
        where, filter_params = filter_sql(filters)
        rows = self._db.execute(
            f"SELECT c.id, -s.score FROM ({ranked}) s JOIN chunks c ON c.rowid = s.rowid "
            f"JOIN files f ON f.doc_key = c.doc_key WHERE {where} ORDER BY s.score LIMIT ?",
            (*params, *filter_params, k))
        return [(i, float(s)) for i, s in rows]

    def filtered_ids(self, filters: Filters) -> list[str]:
        where, params = filter_sql(filters)
        rows = self._db.execute(f"SELECT c.id FROM chunks c JOIN files f ON f.doc_key = c.doc_key WHERE {where}", params)
        return [r[0] for r in rows]

    def documents(self) -> dict[str, tuple[str, list[str]]]:
        """doc key -> (title, outgoing link targets), for resolving note names and links."""
        rows = self._db.execute("SELECT doc_key, title, links FROM files")
        return {key: (title or "", json.loads(links or "[]")) for key, title, links in rows}

    def titles(self) -> dict[str, str]:
        """doc key -> title of every indexed file, for naming notes."""
        return {key: title or "" for key, title in self._db.execute("SELECT doc_key, title FROM files")}

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """doc key -> the aliases its frontmatter gives (every chunk of a note carries the same ones)."""
        rows = self._db.execute("SELECT doc_key, MIN(aliases) FROM chunks WHERE aliases != '[]' GROUP BY doc_key")
        return {key: tuple(json.loads(names)) for key, names in rows}

    def copy_groups(self, doc_keys: Sequence[str]) -> dict[str, str]:
        """doc key -> the key of the material it is a copy of (itself when it is no copy)."""
        keys = list(dict.fromkeys(doc_keys))
        groups = {k: k for k in keys}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, original in self._db.execute(
                    f"SELECT doc_key, copy_of FROM files WHERE copy_of IS NOT NULL AND doc_key IN ({marks})", part):
                groups[key] = original
        return groups

    def inbox_items(self) -> list[tuple[str, str]]:
        """(doc key, content hash) of inbox clips and transcripts: what can be materialised."""
        return list(self._db.execute("SELECT doc_key, content_hash FROM files WHERE root = 'inbox' "
                                     "AND error IS NULL AND source_type IN ('webclip', 'transcript') ORDER BY doc_key"))

    def materialized(self, source: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT note_path, written_hash FROM materialized WHERE source = ?", (source,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_materialized(self, source: str, note_path: str, written_hash: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO materialized VALUES (?, ?, ?)", (source, note_path, written_hash))

    def recent(self, limit: int) -> list[dict[str, object]]:
        """Files most recently (re)indexed: what changed in the person's material lately."""
        rows = self._db.execute("SELECT root, path, title, source_type, doc_date, indexed_at FROM files "
                                "WHERE error IS NULL ORDER BY indexed_at DESC, doc_key LIMIT ?", (limit,))
        return [{"root": root, "path": path, "title": title, "source_type": kind, "date": date, "indexed_at": at}
                for root, path, title, kind, date, at in rows]

    def counts(self) -> tuple[int, int]:
        files = self._db.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return files, chunks

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM chunks")}

    def version(self) -> str | None:
        """Changes with every write of chunks, in whatever process: a reader's cue to reload."""
        return self.get_meta("version")

    def all_vectors(self) -> tuple[list[str], list[bytes]]:
        """(chunk ids, their float32 vectors as bytes), in one consistent read."""
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY rowid").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            marks = ",".join("?" * len(part))
            for cid, blob in self._db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
                found[cid] = array("f", blob).tolist()
        return found

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in file and reading order: for checks and benchmarks that compare whole indexes."""
        return [_chunk(r) for r in self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks ORDER BY doc_key, ordinal")]

    def keyword_rows(self) -> int:
        """Rows in the keyword index; equal to the number of chunks unless something is broken (-1 when
        its two tables, which hold a row for every chunk each, disagree)."""
        counts = {self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _KEYWORD_TABLES}
        return counts.pop() if len(counts) == 1 else -1

    def source_types(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT doc_key, source_type FROM files"))

    def reset(self) -> None:
        """Drop everything, schema included, so a rebuild also upgrades an index of an older schema."""
        with self.transaction() as db:
            for table in _TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (sqlite3.Connection itself cannot)."""


def _within(match: str, without: tuple[str, ...]) -> str:
    """`match` over every column but those in `without` (in both keyword tables, which share names)."""
    return f"- {{{' '.join(without)}}} : ({match})" if without else match


def _add_stat_columns(db: sqlite3.Connection) -> None:
    """An index written before files kept ctime, inode and recheck gets the columns in place (zero):
    its files then differ by stat once, and the next sync re-reads them and re-embeds nothing."""
    have = {row[1] for row in db.execute("PRAGMA table_info(files)")}
    for column in ("ctime_ns", "inode", "recheck"):
        if column not in have:
            db.execute(f"ALTER TABLE files ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")


def _bump_version(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO meta(key, value) VALUES ('version', lower(hex(randomblob(8)))) "
               "ON CONFLICT(key) DO UPDATE SET value = lower(hex(randomblob(8)))")


def _chunk(row: tuple) -> Chunk:
    (cid, doc_key, ordinal, title, heading, text, line_start, line_end, tags, aliases, source_type, url,
     start_s, end_s) = row
    return Chunk(id=cid, doc_key=doc_key, ordinal=ordinal, title=title, heading=heading, text=text,
                 embed_text="", line_start=line_start, line_end=line_end, tags=tuple(json.loads(tags)),
                 aliases=tuple(json.loads(aliases)), source_type=source_type, url=url, start_s=start_s,
                 end_s=end_s)

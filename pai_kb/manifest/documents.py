"""Files and their chunks: what the manifest knows of each file (stat, hash, title, links, date, errors,
privacy), the chunks' text and citation fields, and materialised notes."""

from __future__ import annotations

import json
import sqlite3
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pai_kb.keyword import segmented
from pai_kb.manifest.database import ROWID_TABLES, Database, _bump_version, batched
from pai_kb.models import Chunk, DocKey
from pai_kb.manifest.vectors import Moments, pack_moments

__all__ = ["DocInfo", "Documents", "FileState"]

_CHUNK_COLS = ("id, doc_key, ordinal, title, heading, text, line_start, line_end, tags, aliases, "
               "source_type, url, start_s, end_s, "
               "(SELECT f.local_only FROM files f WHERE f.doc_key = chunks.doc_key)")


@dataclass(frozen=True)
class DocInfo:
    """What the manifest keeps about a file besides its chunks."""
    title: str
    source_type: str = "note"
    links: Sequence[str] = ()
    date: str | None = None  # ISO date the material is from: its own date if it says, else its mtime
    error: str | None = None
    copy_of: str | None = None  # the inbox item a materialised note was written from
    private: bool = False  # its frontmatter says `private: true`: it never leaves the machine
    local_only: bool = False  # a `privacy.local_only` pattern matches its path


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


class Documents(Database):
    """Files, chunks and materialised notes."""

    # -- files ----------------------------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        """doc key -> the stat and content hash recorded for every indexed file."""
        rows = self._db.execute("SELECT doc_key, mtime_ns, size, content_hash, ctime_ns, inode, recheck FROM files")
        return {key: FileState(m, s, h, c, i, bool(r)) for key, m, s, h, c, i, r in rows}

    def file_errors(self) -> dict[str, str]:
        """doc key -> why it was skipped, for every file recorded with an error."""
        return dict(self._db.execute("SELECT doc_key, error FROM files WHERE error IS NOT NULL"))

    def chunk_ids(self, doc_key: str) -> list[str]:
        """The ids of `doc_key`'s chunks in reading order ([] when it is not indexed)."""
        rows = self._db.execute("SELECT id FROM chunks WHERE doc_key = ? ORDER BY ordinal", (doc_key,))
        return [r[0] for r in rows]

    def chunks_of(self, doc_key: str) -> list[Chunk]:
        """`doc_key`'s chunks in reading order (`embed_text` left empty)."""
        rows = self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE doc_key = ? ORDER BY ordinal", (doc_key,))
        return [_chunk(r) for r in rows]

    def ids_by_embed_hash(self, hashes: Iterable[str]) -> dict[str, str]:
        """embed hash -> the id of a chunk stored with that hash (its vector can be reused)."""
        found: dict[str, str] = {}
        for part, marks in batched(list(hashes)):
            found.update(self._db.execute(f"SELECT embed_hash, id FROM chunks WHERE embed_hash IN ({marks})", part))
        return found

    def write_document(self, db: sqlite3.Connection, doc_key: str, state: FileState, info: DocInfo,
                       chunks: Sequence[Chunk], embed_hashes: Sequence[str], vectors: Sequence[Sequence[float]],
                       moments: Mapping[str, Moments] | None = None) -> None:
        """Replace a file's row and all its chunks (with the cue vectors of transcript chunks, by chunk id,
        from `moments`); call inside `transaction()`."""
        moments = moments or {}
        self.delete_document(db, doc_key)
        key = DocKey.parse(doc_key)
        db.execute("INSERT INTO files(doc_key, root, path, mtime_ns, size, content_hash, title, source_type, links, "
                   "error, doc_date, copy_of, indexed_at, ctime_ns, inode, recheck, private, local_only) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (doc_key, key.root, key.path, state.mtime_ns, state.size, state.content_hash, info.title, info.source_type,
                    json.dumps(list(info.links)), info.error, info.date, info.copy_of, time.time(), state.ctime_ns,
                    state.inode, int(state.recheck), int(info.private), int(info.private or info.local_only)))
        for chunk, embed_hash, vector in zip(chunks, embed_hashes, vectors, strict=True):
            cur = db.execute(
                "INSERT INTO chunks(id, doc_key, ordinal, title, heading, text, embed_hash, line_start, "
                "line_end, tags, aliases, source_type, url, start_s, end_s, moments) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (chunk.id, doc_key, chunk.ordinal, chunk.title, chunk.heading, chunk.text, embed_hash,
                 chunk.line_start, chunk.line_end, json.dumps(list(chunk.tags)),
                 json.dumps(list(chunk.aliases)), chunk.source_type, chunk.url, chunk.start_s, chunk.end_s,
                 pack_moments(moments.get(chunk.id))))
            db.execute("INSERT INTO vectors(rowid, vector) VALUES (?, ?)",
                       (cur.lastrowid, array("f", vector).tobytes()))
            fields = (chunk.title, " ".join(chunk.aliases), chunk.heading, chunk.text)
            db.execute("INSERT INTO chunks_fts(rowid, title, aliases, heading, text) VALUES (?, ?, ?, ?, ?)",
                       (cur.lastrowid, *fields))
            db.execute("INSERT INTO chunks_seg(rowid, title, aliases, heading, text) VALUES (?, ?, ?, ?, ?)",
                       (cur.lastrowid, *(segmented(f or "") for f in fields)))

    def delete_document(self, db: sqlite3.Connection, doc_key: str) -> None:
        """Remove a file's row, its chunks with their vectors and keyword rows, and move `version`; call
        inside `transaction()`."""
        _bump_version(db)
        for table in ROWID_TABLES:
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

    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """chunk id -> Chunk, for those of `ids` the manifest holds."""
        found: dict[str, Chunk] = {}
        for part, marks in batched(list(ids)):
            for row in self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE id IN ({marks})", part):
                found[row[0]] = _chunk(row)
        return found

    def documents(self) -> dict[str, tuple[str, list[str]]]:
        """doc key -> (title, outgoing link targets), for resolving note names and links."""
        rows = self._db.execute("SELECT doc_key, title, links FROM files")
        return {key: (title or "", json.loads(links or "[]")) for key, title, links in rows}

    def titles(self) -> dict[str, str]:
        """doc key -> title of every indexed file, for naming notes."""
        return {key: title or "" for key, title in self._db.execute("SELECT doc_key, title FROM files")}

    def privacy_flags(self) -> dict[str, tuple[bool, bool]]:
        """doc key -> (private by its frontmatter, local-only now) of every indexed file."""
        rows = self._db.execute("SELECT doc_key, private, local_only FROM files")
        return {key: (bool(private), bool(local)) for key, private, local in rows}

    def local_only_keys(self) -> set[str]:
        """Doc keys of the files that never leave this machine."""
        return {key for (key,) in self._db.execute("SELECT doc_key FROM files WHERE local_only = 1")}

    def set_local_only(self, flags: Mapping[str, bool]) -> None:
        """Record which files are local-only now (their frontmatter, or a `privacy.local_only` pattern)."""
        if not flags:
            return
        with self.transaction() as db:
            db.executemany("UPDATE files SET local_only = ? WHERE doc_key = ?",
                           [(int(local), key) for key, local in flags.items()])
            _bump_version(db)

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """doc key -> the aliases its frontmatter gives (every chunk of a note carries the same ones)."""
        rows = self._db.execute("SELECT doc_key, MIN(aliases) FROM chunks WHERE aliases != '[]' GROUP BY doc_key")
        return {key: tuple(json.loads(names)) for key, names in rows}

    def copy_groups(self, doc_keys: Sequence[str]) -> dict[str, str]:
        """doc key -> the key of the material it is a copy of (itself when it is no copy)."""
        keys = list(dict.fromkeys(doc_keys))
        groups = {k: k for k in keys}
        for part, marks in batched(keys):
            for key, original in self._db.execute(
                    f"SELECT doc_key, copy_of FROM files WHERE copy_of IS NOT NULL AND doc_key IN ({marks})", part):
                groups[key] = original
        return groups

    def inbox_items(self) -> list[tuple[str, str]]:
        """(doc key, content hash) of inbox clips and transcripts: what can be materialised."""
        return list(self._db.execute("SELECT doc_key, content_hash FROM files WHERE root = 'inbox' "
                                     "AND error IS NULL AND source_type IN ('webclip', 'transcript') ORDER BY doc_key"))

    def materialized(self, source: str) -> tuple[str, str] | None:
        """(vault note path, hash of what was written) for the inbox item `source`, or None when never written."""
        row = self._db.execute("SELECT note_path, written_hash FROM materialized WHERE source = ?", (source,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_materialized(self, source: str, note_path: str, written_hash: str) -> None:
        """Record that inbox item `source` was written as `note_path` with content hash `written_hash`."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO materialized VALUES (?, ?, ?)", (source, note_path, written_hash))

    def recent(self, limit: int) -> list[dict[str, object]]:
        """Files most recently (re)indexed: what changed in the person's material lately."""
        rows = self._db.execute("SELECT root, path, title, source_type, doc_date, indexed_at FROM files "
                                "WHERE error IS NULL ORDER BY indexed_at DESC, doc_key LIMIT ?", (limit,))
        return [{"root": root, "path": path, "title": title, "source_type": kind, "date": date, "indexed_at": at}
                for root, path, title, kind, date, at in rows]

    def counts(self) -> tuple[int, int]:
        """(indexed files, chunks)."""
        files = self._db.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return files, chunks

    def all_chunk_ids(self) -> set[str]:
        """Every chunk id in the manifest."""
        return {r[0] for r in self._db.execute("SELECT id FROM chunks")}

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in file and reading order: for checks and benchmarks that compare whole indexes."""
        return [_chunk(r) for r in self._db.execute(f"SELECT {_CHUNK_COLS} FROM chunks ORDER BY doc_key, ordinal")]

    def source_types(self) -> dict[str, str]:
        """doc key -> source type (note, webclip, transcript, pdf) of every indexed file."""
        return dict(self._db.execute("SELECT doc_key, source_type FROM files"))


def _chunk(row: tuple) -> Chunk:
    (cid, doc_key, ordinal, title, heading, text, line_start, line_end, tags, aliases, source_type, url,
     start_s, end_s, local_only) = row
    return Chunk(id=cid, doc_key=doc_key, ordinal=ordinal, title=title, heading=heading, text=text,
                 embed_text="", line_start=line_start, line_end=line_end, tags=tuple(json.loads(tags)),
                 aliases=tuple(json.loads(aliases)), source_type=source_type, url=url, start_s=start_s,
                 end_s=end_s, local_only=bool(local_only))

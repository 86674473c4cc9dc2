"""Plan, then apply: bring the index to exactly the state of the files on disk.

`diff_stats` and `make_plan` are pure: they compare what is on disk with the manifest and say what to
do. `Syncer.apply` does it in batches, in an order that keeps the index repairable after a crash at
any instant: vector ids are journalled before they reach Chroma, the manifest commits a file's
chunks only after their vectors are stored, and stale vectors are deleted only after the manifest
stopped pointing at them. The next run deletes whatever the journal lists that the manifest lacks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pai_kb.chunking import chunk_document
from pai_kb.config import Config
from pai_kb.embeddings import Embedder
from pai_kb.errors import SourceError
from pai_kb.loaders import load_bytes, read_file, read_sidecar
from pai_kb.loaders.frontmatter import document_date
from pai_kb.manifest import DocInfo, FileState, Manifest
from pai_kb.models import Chunk, Document
from pai_kb.sources import SourceFile
from pai_kb.store import VectorStore

Progress = Callable[[int, int], None]
# Files are applied in batches of about this many chunks: big enough for efficient embedding batches,
# small enough that a crash loses little work and searches see progress.
_BATCH_CHUNKS = 256


@dataclass(frozen=True)
class StatDiff:
    new: tuple[str, ...]
    changed: tuple[str, ...]  # stat differs: content may or may not
    deleted: tuple[str, ...]
    unchanged: int


@dataclass(frozen=True)
class Plan:
    add: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    move: tuple[tuple[str, str], ...] = ()  # (old key, new key), identical content
    delete: tuple[str, ...] = ()
    touch: tuple[str, ...] = ()  # stat changed, content did not
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.add or self.update or self.move or self.delete or self.touch)


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    repaired: int = 0
    warnings: list[str] = field(default_factory=list)


def diff_stats(disk: Mapping[str, SourceFile], indexed: Mapping[str, FileState]) -> StatDiff:
    new, changed, unchanged = [], [], 0
    for key, source in disk.items():
        state = indexed.get(key)
        if state is None:
            new.append(key)
        elif state.mtime_ns != source.mtime_ns or state.size != source.size:
            changed.append(key)
        else:
            unchanged += 1
    deleted = [key for key in indexed if key not in disk]
    return StatDiff(tuple(sorted(new)), tuple(sorted(changed)), tuple(sorted(deleted)), unchanged)


def make_plan(diff: StatDiff, hashes: Mapping[str, str], indexed: Mapping[str, FileState]) -> Plan:
    """`hashes` holds the content hash of every new and changed file that could be read."""
    by_hash: dict[str, list[str]] = {}
    for key in diff.deleted:
        by_hash.setdefault(indexed[key].content_hash, []).append(key)
    add, move = [], []
    for key in diff.new:
        olds = by_hash.get(hashes.get(key, ""), [])
        if olds:
            move.append((olds.pop(0), key))
        else:
            add.append(key)
    moved_from = {old for old, _ in move}
    update = [k for k in diff.changed if hashes.get(k) != indexed[k].content_hash]
    touch = [k for k in diff.changed if k in hashes and hashes[k] == indexed[k].content_hash]
    delete = [k for k in diff.deleted if k not in moved_from]
    return Plan(tuple(add), tuple(update), tuple(move), tuple(delete), tuple(touch), diff.unchanged)


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def embed_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class _Work:
    """One file to (re)write: its new state and chunks, and the chunk ids it replaces."""
    key: str
    state: FileState
    doc: Document | None
    chunks: list[Chunk]
    old_ids: list[str]
    moved_from: str | None = None
    reuse_from: list[Chunk] = field(default_factory=list)  # a moved file's previous chunks
    error: str | None = None


def _info(work: _Work) -> DocInfo:
    fallback = dt.datetime.fromtimestamp(work.state.mtime_ns / 1e9).date().isoformat()
    if work.doc is None:
        return DocInfo(work.key.rsplit("/", 1)[-1], date=fallback, error=work.error)
    doc = work.doc
    source = doc.metadata.get("pai-kb-source")
    copy_of = source if isinstance(source, str) and source.startswith("inbox/") else None
    return DocInfo(doc.title, doc.source_type, doc.links, document_date(doc.metadata) or fallback, work.error, copy_of)


class Syncer:
    def __init__(self, config: Config, manifest: Manifest, store: Callable[[], VectorStore],
                 embedder: Embedder, stop: Callable[[], bool] | None = None, batch_chunks: int | None = None) -> None:
        self.config = config
        self._stop = stop or (lambda: False)
        self._batch_chunks = batch_chunks or _BATCH_CHUNKS
        self.manifest = manifest
        self._store_factory = store
        self._store: VectorStore | None = None
        self.embedder = embedder

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def read(self, disk: Mapping[str, SourceFile], keys: Iterable[str],
             report: SyncReport) -> tuple[dict[str, bytes], dict[str, str]]:
        data, hashes = {}, {}
        for key in keys:
            try:
                data[key] = read_file(disk[key].abspath, key, self.config.max_file_bytes)
            except SourceError as exc:
                # Oversized files still get a hash of their stat, so they are skipped, not retried forever.
                if "limit" in str(exc):
                    hashes[key] = f"oversize:{disk[key].size}:{disk[key].mtime_ns}"
                report.warnings.append(str(exc))
                continue
            hashes[key] = content_hash(data[key])
        return data, hashes

    def apply(self, plan: Plan, disk: Mapping[str, SourceFile], data: Mapping[str, bytes],
              hashes: Mapping[str, str], report: SyncReport, progress: Progress | None = None) -> None:
        total = len(plan.add) + len(plan.update) + len(plan.move) + len(plan.delete) + len(plan.touch)
        done = 0
        self._touch(plan.touch, disk, hashes)
        done += len(plan.touch)
        self._delete(plan.delete)
        report.removed += len(plan.delete)
        done += len(plan.delete)
        if progress:
            progress(done, total)
        items = ([(k, None, "added") for k in plan.add] + [(k, None, "updated") for k in plan.update]
                 + [(new, old, "moved") for old, new in plan.move])
        batch: list[_Work] = []
        for key, old_key, kind in items:
            if self._stop():
                break
            setattr(report, kind, getattr(report, kind) + 1)
            work = self._prepare(key, old_key, disk[key], data, hashes, report)
            if work is not None:
                batch.append(work)
            if sum(len(w.chunks) for w in batch) >= self._batch_chunks:
                self._write(batch, report)
                done += len(batch)
                batch = []
                if progress:
                    progress(done, total)
        if batch:
            self._write(batch, report)
            if progress:
                progress(total, total)

    def _prepare(self, key: str, old_key: str | None, source: SourceFile, data: Mapping[str, bytes],
                 hashes: Mapping[str, str], report: SyncReport) -> _Work | None:
        if key not in hashes:
            return None  # unreadable now: keep whatever was indexed, retry next run
        state = FileState(source.mtime_ns, source.size, hashes[key])
        own_ids = self.manifest.chunk_ids(key)
        moved = self.manifest.chunks_of(old_key) if old_key else []
        work = _Work(key, state, None, [], own_ids + [c.id for c in moved], moved_from=old_key, reuse_from=moved)
        if key not in data:
            report.skipped += 1
            work.error = "oversize"
            return work
        try:
            work.doc = load_bytes(data[key], source.root, source.path, read_sidecar(source.abspath))
        except SourceError as exc:
            report.warnings.append(str(exc))
            report.skipped += 1
            work.error = str(exc)
            return work
        report.warnings.extend(work.doc.warnings)
        work.chunks = chunk_document(work.doc, self.embedder.count_tokens, self.config.chunk_tokens,
                                     self.config.chunk_overlap, self.embedder.max_tokens)
        return work

    def _write(self, batch: list[_Work], report: SyncReport) -> None:
        ids, vectors, metas = self._vectors(batch, report)
        with self.manifest.transaction() as db:
            self.manifest.add_orphans(db, ids)
        if ids:
            self.store.upsert(ids, vectors, metas)
        stale: list[str] = []
        with self.manifest.transaction() as db:
            for work in batch:
                if work.moved_from:
                    self.manifest.delete_document(db, work.moved_from)
                self.manifest.write_document(db, work.key, work.state, _info(work), work.chunks,
                                             [embed_hash(c.embed_text) for c in work.chunks])
                new = {c.id for c in work.chunks}
                stale.extend(i for i in work.old_ids if i not in new)
            self.manifest.add_orphans(db, stale)
            self.manifest.clear_orphans(db, ids)
        if stale:
            self.store.delete(stale)
            with self.manifest.transaction() as db:
                self.manifest.clear_orphans(db, stale)

    def _vectors(self, batch: Sequence[_Work], report: SyncReport) -> tuple[list[str], list, list[dict]]:
        """Vectors for every chunk not already stored under its id: reused from the store when some
        chunk with the same embedded text (or a moved file's chunk at the same place) exists, else
        embedded. Only genuinely new text reaches the model."""
        todo: list[tuple[Chunk, str]] = []
        reuse_ids: dict[str, str] = {}  # new chunk id -> stored id with the same vector
        for work in batch:
            old = set(work.old_ids)
            for chunk in work.chunks:
                if chunk.id in old:
                    report.chunks_reused += 1
                    continue
                previous = work.reuse_from[chunk.ordinal] if chunk.ordinal < len(work.reuse_from) else None
                if previous is not None and previous.text == chunk.text:
                    # A renamed note keeps its vectors even though its title changed: the keyword index
                    # carries the new title at once, and content is what the vector is about.
                    reuse_ids[chunk.id] = previous.id
                todo.append((chunk, embed_hash(chunk.embed_text)))
        known = self.manifest.ids_by_embed_hash({h for c, h in todo if c.id not in reuse_ids})
        for chunk, h in todo:
            if chunk.id not in reuse_ids and h in known:
                reuse_ids[chunk.id] = known[h]
        stored = self.store.vectors(sorted(set(reuse_ids.values()))) if reuse_ids else {}
        vectors: dict[str, list[float]] = {}
        fresh = []
        for chunk, _ in todo:
            vector = stored.get(reuse_ids.get(chunk.id, ""))
            if vector is not None:
                vectors[chunk.id] = vector
                report.chunks_reused += 1
            else:
                fresh.append(chunk)
        for chunk, vector in zip(fresh, self.embedder.embed([c.embed_text for c in fresh])):
            vectors[chunk.id] = vector
        report.chunks_embedded += len(fresh)
        ids = [c.id for c, _ in todo]
        metas = [{"doc_key": c.doc_key, "source_type": c.source_type} for c, _ in todo]
        return ids, [vectors[i] for i in ids], metas

    def _delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        stale: list[str] = []
        with self.manifest.transaction() as db:
            for key in keys:
                stale.extend(self.manifest.chunk_ids(key))
                self.manifest.delete_document(db, key)
            self.manifest.add_orphans(db, stale)
        if stale:
            self.store.delete(stale)
            with self.manifest.transaction() as db:
                self.manifest.clear_orphans(db, stale)

    def _touch(self, keys: Sequence[str], disk: Mapping[str, SourceFile], hashes: Mapping[str, str]) -> None:
        if not keys:
            return
        with self.manifest.transaction() as db:
            db.executemany("UPDATE files SET mtime_ns = ?, size = ? WHERE doc_key = ?",
                           [(disk[k].mtime_ns, disk[k].size, k) for k in keys])

    def repair(self) -> int:
        """Delete the vectors an interrupted run left behind; returns how many."""
        orphans = self.manifest.orphans()
        if orphans:
            self.store.delete(orphans)
        with self.manifest.transaction() as db:
            self.manifest.clear_orphans(db)
        return len(orphans)

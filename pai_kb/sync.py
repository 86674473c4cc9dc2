"""Plan, then apply: bring the index to exactly the state of the files on disk, and the owner of the
whole crash-safety protocol.

`changes` compares what is on disk with the manifest and says what to do (the plan). `Syncer.run` is the
one entry, and the protocol reads top to bottom here:

1. Repair first. The journal (`orphans`) lists vector ids that may be in the store without the manifest
   pointing at them; those are deleted. When the last run did not finish (`dirty` flag), every id of
   the store and the manifest is compared: stray vectors go, files whose vectors are missing are
   forgotten so the plan indexes them again.
2. Apply in batches, in an order that keeps the index repairable after a crash at any instant: vector
   ids are journalled before they reach the store, the manifest commits a file's chunks only after
   their vectors are stored, and stale vectors are journalled in the same transaction that stops the
   manifest pointing at them, then dropped (`_drop_vectors`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from pai_kb import audio
from pai_kb.changes import (Plan, diff_stats, embed_hash, keep_only, make_plan, observed, plan_keys, read_any,
                            removal_refusal, split_plan, unmatched_patterns)
from pai_kb.chunking import chunk_document
from pai_kb.config import Config
from pai_kb.embeddings import Embedder
from pai_kb.errors import MassRemoval, SourceError
from pai_kb.loaders import load_bytes, read_sidecar
from pai_kb.loaders.frontmatter import document_date
from pai_kb.manifest import DocInfo, FileState, Manifest, Moments
from pai_kb.models import Chunk, DocKey, Document, slices
from pai_kb.sources import SourceFile, excluded, scan
from pai_kb.store import VectorStore


class Progress(Protocol):
    """Told how far a sync is: `done` of `total` files applied (`unit` "files"), or, while recordings
    are transcribed, `done` of `total` seconds of audio (`unit` "seconds")."""

    def __call__(self, done: int, total: int, unit: str = "files") -> None: ...


# Files are applied in batches of about this many chunks: big enough for efficient embedding batches,
# small enough that a crash loses little work and searches see progress.
_BATCH_CHUNKS = 256
@dataclass
class SyncReport:
    """What one sync did: file counts by action, chunks embedded and reused, warnings, seconds."""
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
    changed: list[str] = field(default_factory=list)  # "added vault/a.md", ...: what logs name
    pending_audio: list[str] = field(default_factory=list)  # recordings left to transcribe (see audio.py)


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


def copy_of(key: str, source: object, transcripts_folder: str) -> str | None:
    """The material the file `key` is a materialised copy of, by its `pai-kb-source`: an inbox item, or a
    vault recording when the note lies in the transcripts folder (see `writeback.recording_note`); None
    otherwise, so no note can hide one of the person's own notes from search by naming it."""
    if not isinstance(source, str):
        return None
    if source.startswith("inbox/"):
        return source
    folder = transcripts_folder.strip("/") + "/"
    if (source.startswith("vault/") and audio.is_recording_name(source)
            and DocKey.parse(key).root == "vault" and DocKey.parse(key).path.startswith(folder)):
        return source
    return None


def _info(work: _Work, local_only: tuple[str, ...], transcripts_folder: str) -> DocInfo:
    fallback = dt.datetime.fromtimestamp(work.state.mtime_ns / 1e9).date().isoformat()
    if work.doc is None:
        return DocInfo(DocKey.parse(work.key).path.rsplit("/", 1)[-1], date=fallback, error=work.error)
    doc = work.doc
    original = copy_of(work.key, doc.metadata.get("pai-kb-source"), transcripts_folder)
    private = doc.metadata.get("private") in (True, "true", "yes")
    matched = bool(local_only) and excluded(DocKey.parse(work.key).path, local_only)
    return DocInfo(doc.title, doc.source_type, doc.links, document_date(doc.metadata) or fallback, work.error, original,
                   private, matched)


class SyncStopped(Exception):
    """A sync's `stop` said so in the middle of embedding a batch; that batch is not written (see `_embed`)."""


# Texts per call to a model that does not say its batch size; between calls a stop request is honoured.
_EMBED_SLICE = 16


class Syncer:
    """Runs one repair-then-sync pass of one generation (see the module doc for the crash protocol)."""

    def __init__(self, config: Config, manifest: Manifest, store: Callable[[], VectorStore],
                 embedder: Embedder, stop: Callable[[], bool] | None = None, batch_chunks: int | None = None) -> None:
        self.config = config
        self._stop = stop or (lambda: False)
        self._batch_chunks = batch_chunks or _BATCH_CHUNKS
        self.manifest = manifest
        self._store_factory = store
        self._store: VectorStore | None = None
        self.embedder = embedder
        self._started_ns = time.time_ns()  # when the walk whose stats are recorded began
        self._unread: dict[str, str] = {}  # key -> why it was not read (skipped with that reason)

    @property
    def store(self) -> VectorStore:
        """The vector store, opened only when a pass needs it (a no-op sync must not)."""
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def run(self, roots: Mapping[str, Path], exclude: tuple[str, ...], progress: Progress | None = None,
            allow_removal: bool = False) -> SyncReport:
        """Repair what an interrupted run left, then one plan-then-apply pass. The caller holds
        `writer_lock`. A stopped pass leaves a consistent index that the next pass completes."""
        started = time.perf_counter()
        report = SyncReport(repaired=self._repair())
        self._started_ns = time.time_ns()
        found = scan(roots, exclude)
        disk = found.files
        report.warnings.extend(unmatched_patterns(self.config.exclude, found.excluded))
        indexed = self.manifest.file_states()
        diff = diff_stats(disk, indexed)
        refusal = None if allow_removal else removal_refusal(diff, len(indexed), roots)
        if refusal:
            raise MassRemoval(f"refusing to sync: {refusal}; nothing was removed. Mount or restore it, or run "
                              "`pai-kb index --allow-removal` if the files really are gone")
        data, hashes = self.read(disk, diff.new + diff.changed + diff.recheck, report)
        plan = make_plan(diff, hashes, indexed)
        report.unchanged = plan.unchanged + len(plan.touch)
        if not plan.empty:
            self.manifest.set_meta("dirty", "1")
            plan, recordings = split_plan(plan, data, self.config)
            self.apply(plan, disk, data, hashes, report, progress)
            if recordings is not None:
                self._transcribe(recordings, disk, data, hashes, report, progress)
        self.manifest.set_meta("last_sync", str(time.time()))
        if self.manifest.get_meta("dirty"):
            self.manifest.delete_meta("dirty")
        report.chunks_total = self.manifest.counts()[1]
        report.seconds = time.perf_counter() - started
        return report

    def _transcribe(self, plan: Plan, disk: Mapping[str, SourceFile], data: Mapping[str, bytes],
                    hashes: Mapping[str, str], report: SyncReport, progress: Progress | None) -> None:
        """Recordings come after the text files are committed, being slow: each is transcribed into the
        cache (`progress` is told the seconds of audio done), then applied like any file (a failed one
        is skipped with its reason). Ones not reached (a stop request, the extra missing, or
        `audio_in_sync` off, as in `watch`) stay unrecorded, so the next run picks them up; they are
        listed in `report.pending_audio`."""
        keys = plan_keys(plan)
        if not self.config.audio_in_sync:
            report.pending_audio.extend(keys)
            return

        def seconds(done: float, total: float) -> None:
            if progress:
                progress(int(done), int(total), "seconds")

        outcome = audio.transcribe_all({k: data[k] for k in keys}, self.config, self._stop, on_progress=seconds)
        if outcome.warning:
            report.warnings.append(outcome.warning)
        report.pending_audio.extend(outcome.pending)
        self.apply(keep_only(plan, outcome.done), disk, data, hashes, report, progress)

    def _repair(self) -> int:
        """Drop the vectors an interrupted run journalled; after a run that did not finish at all,
        compare every id. Returns how many vectors were dropped or found missing."""
        repaired = 0
        if self.manifest.journal_size():
            orphans = self.manifest.orphans()
            self._drop_vectors(orphans)
            with self.manifest.transaction() as db:
                self.manifest.clear_orphans(db)
            repaired += len(orphans)
        if self.manifest.get_meta("dirty"):
            repaired += self._verify_store()
        return repaired

    def _verify_store(self) -> int:
        """Drop stray vectors and forget files whose vectors are missing, so the plan re-indexes them.
        Costs one scan of both; only runs after a crash."""
        stored = self.store.ids()
        known = self.manifest.all_chunk_ids()
        stray = sorted(stored - known)
        with self.manifest.transaction() as db:
            self.manifest.add_orphans(db, stray)
        self._drop_vectors(stray)
        missing = known - stored
        if missing:
            keys = {c.doc_key for c in self.manifest.get_chunks(sorted(missing)).values()}
            with self.manifest.transaction() as db:
                dropped = self.manifest.forget_documents(db, keys)
            self._drop_vectors(dropped)
        return len(stray) + len(missing)

    def _drop_vectors(self, journalled: Sequence[str]) -> None:
        """Delete vectors whose ids are already in the journal, then clear them from it: a crash in
        between leaves them journalled, and the next run's repair deletes them again."""
        if not journalled:
            return
        self.store.delete(journalled)
        with self.manifest.transaction() as db:
            self.manifest.clear_orphans(db, journalled)

    def read(self, disk: Mapping[str, SourceFile], keys: Iterable[str],
             report: SyncReport) -> tuple[dict[str, bytes], dict[str, str]]:
        """Bytes and hashes of `keys`; each one that cannot be read is a warning, and (unless it
        vanished meanwhile) gets a stand-in hash so it is recorded as skipped with its reason. A
        recording, by its name or its first bytes, is an `audio.Recording`: hashed from the file, never
        held whole (they run to `audio.max_bytes`)."""
        data, hashes = {}, {}
        for key in keys:
            read = read_any(disk[key], self.config)
            if read.problem:
                report.warnings.append(read.problem)
                self._unread[key] = read.problem
            if read.data is not None:
                data[key] = read.data
            if read.hash is not None:
                hashes[key] = read.hash
        return data, hashes

    def apply(self, plan: Plan, disk: Mapping[str, SourceFile], data: Mapping[str, bytes],
              hashes: Mapping[str, str], report: SyncReport, progress: Progress | None = None) -> None:
        """Carry out `plan` file by file, each file's chunks in one transaction, counting into `report`.
        Raises SyncStopped when `stop` says so mid-embedding (that batch is not written)."""
        total = len(plan.add) + len(plan.update) + len(plan.move) + len(plan.delete) + len(plan.touch)
        done = 0
        self._touch(plan.touch, disk, hashes)
        done += len(plan.touch)
        self._delete(plan.delete)
        report.removed += len(plan.delete)
        report.changed.extend(f"removed {k}" for k in plan.delete)
        done += len(plan.delete)
        if progress:
            progress(done, total)
        items = ([(k, None, "added") for k in plan.add] + [(k, None, "updated") for k in plan.update]
                 + [(new, old, "moved") for old, new in plan.move])
        batch: list[_Work] = []
        for key, old_key, kind in items:
            if self._stop():
                break
            work = self._prepare(key, old_key, disk[key], data, hashes, report)
            if work is None:
                continue
            if work.error is None:
                setattr(report, kind, getattr(report, kind) + 1)
            report.changed.append(f"{kind if work.error is None else 'skipped'} {key}")
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
        state = observed(source, hashes[key], self._started_ns)
        own_ids = self.manifest.chunk_ids(key)
        moved = self.manifest.chunks_of(old_key) if old_key else []
        work = _Work(key, state, None, [], own_ids + [c.id for c in moved], moved_from=old_key, reuse_from=moved)
        if key not in data:
            report.skipped += 1  # its warning was given when it could not be read
            work.error = self._unread.get(key, f"{key}: not read")
            return work
        try:
            work.doc = load_bytes(data[key], source.root, source.path, read_sidecar(source.abspath),
                                  self.config.load_budget_s)
            work.chunks = chunk_document(work.doc, self.embedder.count_tokens, self.config.chunk_tokens,
                                         self.config.chunk_overlap, self.embedder.max_tokens)
        except SourceError as exc:
            return self._skip(work, str(exc), report)
        except Exception as exc:  # noqa: BLE001 — the per-file boundary: one file, whatever it does, never stops a run
            return self._skip(work, f"{key}: could not be read as {PurePosixPath(key).suffix or 'text'} "
                                    f"({type(exc).__name__}: {exc}); not indexed", report)
        report.warnings.extend(work.doc.warnings)
        return work

    @staticmethod
    def _skip(work: _Work, why: str, report: SyncReport) -> _Work:
        """Recorded with its reason (`status` lists it as skipped) and without chunks."""
        report.warnings.append(why)
        report.skipped += 1
        work.doc, work.chunks, work.error = None, [], why
        return work

    def _write(self, batch: list[_Work], report: SyncReport) -> None:
        ids, vectors, metas, every, source_of = self._vectors(batch, report)
        moments = self._moments(batch, source_of)
        with self.manifest.transaction() as db:
            self.manifest.add_orphans(db, ids)
        if ids:
            self.store.upsert(ids, vectors, metas)
        stale: list[str] = []
        with self.manifest.transaction() as db:
            for work in batch:
                if work.moved_from:
                    self.manifest.delete_document(db, work.moved_from)
                info = _info(work, self.config.local_only, self.config.transcripts_folder)
                self.manifest.write_document(db, work.key, work.state, info, work.chunks,
                                             [embed_hash(c.embed_text) for c in work.chunks],
                                             [every[c.id] for c in work.chunks], moments)
                new = {c.id for c in work.chunks}
                stale.extend(i for i in work.old_ids if i not in new)
            self.manifest.add_orphans(db, stale)
            self.manifest.clear_orphans(db, ids)
        self._drop_vectors(stale)

    def _vectors(self, batch: Sequence[_Work], report: SyncReport) -> tuple[list[str], list, list[dict], dict, dict]:
        """Vectors for every chunk of the batch (the fourth item maps each id to its vector, for the
        manifest; the fifth each reused chunk's id to the stored chunk it took its vector from), and the
        ids, vectors and metadata the store does not hold yet. A vector is reused
        from the manifest when the chunk keeps its id, when some chunk with the same embedded text (or
        a moved file's chunk at the same place) exists; only genuinely new text reaches the model."""
        todo: list[tuple[Chunk, str]] = []
        reuse_ids: dict[str, str] = {}  # new chunk id -> stored id with the same vector
        kept: list[str] = []  # chunks whose id, and so whose vector, is unchanged
        for work in batch:
            old = set(work.old_ids)
            for chunk in work.chunks:
                if chunk.id in old:
                    report.chunks_reused += 1
                    kept.append(chunk.id)
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
        stored = self.manifest.vectors(sorted(set(reuse_ids.values()) | set(kept)))
        vectors: dict[str, list[float]] = {i: stored[i] for i in kept}
        source_of = {i: i for i in kept}
        fresh = []
        for chunk, _ in todo:
            vector = stored.get(reuse_ids.get(chunk.id, ""))
            if vector is not None:
                vectors[chunk.id] = vector
                source_of[chunk.id] = reuse_ids[chunk.id]
                report.chunks_reused += 1
            else:
                fresh.append(chunk)
        vectors.update(zip((c.id for c in fresh), self._embed([c.embed_text for c in fresh])))
        report.chunks_embedded += len(fresh)
        ids = [c.id for c, _ in todo]
        metas = [{"doc_key": c.doc_key, "source_type": c.source_type} for c, _ in todo]
        return ids, [vectors[i] for i in ids], metas, vectors, source_of

    def _moments(self, batch: Sequence[_Work], source_of: Mapping[str, str]) -> dict[str, Moments]:
        """Each transcript chunk's cues with their vectors (`Hit.at_s` is found from them). A chunk that
        took its vector from a stored one with as many cues takes those cue vectors too (same text, same
        cues), with its own start times; the others' cues are embedded, without the heading: a cue is
        scored against the query on its own words."""
        timed = [c for work in batch for c in work.chunks if c.cues]
        stored = self.manifest.moments([source_of[c.id] for c in timed if c.id in source_of])
        found: dict[str, Moments] = {}
        todo = []
        for chunk in timed:
            old = stored.get(source_of.get(chunk.id, ""))
            if old is not None and len(old) == len(chunk.cues):
                found[chunk.id] = [(start, vector) for (start, _, _), (_, vector) in zip(chunk.cues, old)]
            else:
                todo.append(chunk)
        vectors = iter(self._embed([c.text[a:b] for c in todo for _, a, b in c.cues]))
        for chunk in todo:
            found[chunk.id] = [(start, next(vectors)) for start, _, _ in chunk.cues]
        return found

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Each text's vector, in order, embedded one model batch at a time (shortest texts first, so
        each slice pads little), looking at `stop` before every slice: a stop request lands within one
        slice (well under a second) even inside a note of a thousand chunks. Raises SyncStopped then;
        nothing of this batch has been written, so the index stays as the last committed batch left it."""
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        size = getattr(self.embedder, "batch_size", _EMBED_SLICE)
        vectors: list[list[float]] = [[] for _ in texts]
        for done, part in enumerate(slices(order, size)):
            if self._stop():
                raise SyncStopped(f"stopped after embedding {done * size} of {len(texts)} texts of this batch")
            for n, vector in zip(part, self.embedder.embed([texts[n] for n in part])):
                vectors[n] = vector
        return vectors

    def _delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self.manifest.transaction() as db:
            stale = self.manifest.forget_documents(db, keys)
        self._drop_vectors(stale)

    def _touch(self, keys: Sequence[str], disk: Mapping[str, SourceFile], hashes: Mapping[str, str]) -> None:
        if keys:
            with self.manifest.transaction() as db:
                self.manifest.touch(db, {k: observed(disk[k], hashes[k], self._started_ns) for k in keys})

"""An index folder and its generations: the one owner of where an index's files live, which build
readers use, and the only way to write one.

Each build of an index is a generation, a folder `gen-N` under the index folder holding the manifest (and,
with a Chroma server, nothing else: the server holds the vectors' copy); the file `CURRENT` names the one
readers use. A rebuild (or a change of model, chunker or store) builds the next generation beside the
current one and switches `CURRENT` with one atomic rename, so readers see the old index or the new one,
never none; a build killed half-way leaves `CURRENT` as it was (`--rebuild` then starts afresh, a settings
change resumes it). The generation before the current one is kept, so a reader still on it finishes its
request; older ones are removed by the next switch — only folders pai-kb can prove it made (`ours`): a
rebuild never deletes a folder someone else named `gen-7`.

`Generation` holds one build's manifest, vector store, dense matrix and retriever, so following a switch
replaces one reference. `Generations.writer()` takes the writer lock and yields the `Writer`, the one way
to sync; opening a generation to read creates nothing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from pai_kb.dense import DenseIndex, ServerDense
from pai_kb.embeddings import Encoder
from pai_kb.errors import ConfigError, IndexWriteError
from pai_kb.locking import writer_lock
from pai_kb.manifest import Manifest
from pai_kb.search import Retriever
from pai_kb.store import ManifestVectors, VectorStore, collection_name, drop_collection
from pai_kb.sync import Progress, SyncReport

__all__ = ["CURRENT", "Generation", "Generations", "Writer", "create", "current", "following", "newest", "ours",
           "prune", "switch", "write_failure"]

CURRENT = "CURRENT"
MARKER = ".pai-kb-generation"
log = logging.getLogger("pai_kb.generations")
# In a generation built on a Chroma server: the server's URL and the generation's collection there.
SERVER_RECORD = "chroma-server.json"
_OLD_CONTENTS = frozenset(("manifest.sqlite3", "manifest.sqlite3-wal", "manifest.sqlite3-shm", "chroma"))
_GENERATION = re.compile(r"gen-(\d+)")


def current(index_dir: Path) -> Path:
    """The generation readers use; `gen-1` before anything was built. Raises ConfigError when `CURRENT`
    cannot be read or names no `gen-N`."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return index_dir / "gen-1"
    except OSError as exc:
        raise ConfigError(f"cannot read {index_dir / CURRENT} ({exc.strerror}); check the index folder's permissions") from exc
    if not _GENERATION.fullmatch(name):
        raise ConfigError(f"{index_dir / CURRENT} is damaged (it says {name[:40]!r}); run `pai-kb index --rebuild`")
    return index_dir / name


def _numbers(index_dir: Path) -> list[int]:
    return [int(m.group(1)) for p in index_dir.glob("gen-*") if (m := _GENERATION.fullmatch(p.name))]


def following(index_dir: Path) -> Path:
    """A new generation folder's path, numbered after every one that exists (finished or not)."""
    return index_dir / f"gen-{max(_numbers(index_dir), default=0) + 1}"


def newest(index_dir: Path) -> Path | None:
    """The highest-numbered generation folder: the current one, or a build not finished yet."""
    numbers = _numbers(index_dir)
    return index_dir / f"gen-{max(numbers)}" if numbers else None


def switch(index_dir: Path, generation: Path) -> None:
    """Make `generation` current in one atomic step, durable before it returns."""
    tmp = index_dir / f"{CURRENT}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(generation.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / CURRENT)


# errno and SQLite result codes that mean "this folder cannot be written", and what to do about each.
_FULL = "the disk is full; free some space (or move the index with --index DIR) and run it again"
_READ_ONLY = "the folder is read-only; make it writable (or move the index with --index DIR) and run it again"
_DENIED = "permission is denied; give this user write access (or move the index with --index DIR)"
_OS_CAUSES = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EFBIG: _FULL, errno.EROFS: _READ_ONLY,
              errno.EACCES: _DENIED, errno.EPERM: _DENIED}
_SQLITE_CAUSES = {13: _FULL, 8: _READ_ONLY, 14: _DENIED}  # SQLITE_FULL, SQLITE_READONLY, SQLITE_CANTOPEN


def write_failure(exc: BaseException, index_dir: Path) -> IndexWriteError | None:
    """The one-line IndexWriteError for an OSError or sqlite3 error that means the index folder cannot
    be written (disk full, read-only, permission denied), naming the folder and what to do; None for
    any other error."""
    cause = None
    if isinstance(exc, OSError):
        cause = _OS_CAUSES.get(exc.errno or 0)
    elif isinstance(exc, sqlite3.Error):
        cause = _SQLITE_CAUSES.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
    if cause is None:
        return None
    return IndexWriteError(f"cannot write the index at {index_dir}: {cause}; the index as it was is still searchable")


def create(generation: Path, chroma_url: str | None = None) -> Path:
    """Make a generation folder with the marker that proves pai-kb made it (only writers call this).
    With `chroma_url`, also record the server that holds its collection (`SERVER_RECORD`), so pruning
    the generation drops that collection even after the setting changed."""
    generation.mkdir(parents=True, exist_ok=True)
    marker = generation / MARKER
    if not marker.exists():
        marker.write_text("made by pai-kb; the folder is removed when a newer generation replaces it\n",
                          encoding="utf-8")
    record = generation / SERVER_RECORD
    if chroma_url and not record.exists():
        record.write_text(json.dumps({"url": chroma_url, "collection": collection_name(generation)}), encoding="utf-8")
    return generation


def ours(generation: Path) -> bool:
    """Whether pai-kb provably made this folder: it has the marker, or (an index from before markers)
    holds nothing but a manifest and an embedded vector store. A folder someone else put there is kept."""
    if not generation.is_dir() or generation.is_symlink():
        return False
    if (generation / MARKER).is_file():
        return True
    return all(entry.name in _OLD_CONTENTS for entry in generation.iterdir())


def prune(index_dir: Path, keep: set[Path]) -> list[Path]:
    """Remove generations other than `keep` (unfinished ones included) that pai-kb made (see `ours`),
    with their collections on a Chroma server (a server that cannot be reached leaves the collection,
    with a warning naming it); returns what was removed."""
    removed = []
    for path in index_dir.glob("gen-*"):
        if _GENERATION.fullmatch(path.name) and path not in keep and ours(path):
            _drop_collection(path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _drop_collection(generation: Path) -> None:
    try:
        record = json.loads((generation / SERVER_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an embedded generation: its vectors go with its folder
    try:
        drop_collection(record["url"], record["collection"])
    except ConfigError as exc:
        log.warning("collection %s of the removed %s was left on the server: %s", record["collection"],
                    generation.name, exc)


class Generation:
    """One build (`INDEX/gen-N`): its manifest, vector store, dense matrix and retriever, each opened on
    first use; `close` closes what was opened (connections and the retriever's threads)."""

    def __init__(self, path: Path, chroma_url: str | None, encoder_for: Callable[[Manifest], Encoder]) -> None:
        self.path = path
        self._chroma_url = chroma_url
        self._encoder_for = encoder_for

    @property
    def exists(self) -> bool:
        """Whether this generation has a manifest (reading never creates one)."""
        return (self.path / "manifest.sqlite3").is_file()

    @cached_property
    def manifest(self) -> Manifest:
        """This generation's manifest (`gen-N/manifest.sqlite3`), opened on first use."""
        return Manifest(self.path / "manifest.sqlite3")

    @cached_property
    def store(self) -> VectorStore | ManifestVectors:
        """The Chroma server's collection with `index.url`; else the manifest itself (see `store`)."""
        if self._chroma_url:
            return VectorStore(self.path / "chroma", self._chroma_url, collection_name(self.path))
        return ManifestVectors(self.manifest)

    @property
    def store_is_open(self) -> bool:
        """Whether anything so far needed the vector store (a no-op sync must not)."""
        return "store" in vars(self)

    @cached_property
    def query_encoder(self) -> Encoder:
        """The encoder of the model this generation was built with."""
        return self._encoder_for(self.manifest)

    @cached_property
    def dense(self) -> DenseIndex | ServerDense:
        """The dense arm over this generation's vectors: the Chroma server's collection with `index.url`,
        else the manifest's vectors as one matrix, loaded on first query."""
        if self._chroma_url:
            return ServerDense(self.manifest, lambda: self.store)
        return DenseIndex(self.manifest)

    @cached_property
    def retriever(self) -> Retriever:
        """The retriever over this generation's manifest, dense index and query encoder."""
        return Retriever(self.manifest, self.dense, lambda: self.query_encoder)

    def close(self) -> None:
        """Stop the search threads and close the manifest's connections (idempotent)."""
        if "retriever" in vars(self):
            self.retriever.close()
        if "manifest" in vars(self):
            self.manifest.close()


# What a writer runs on one generation: (generation, progress, stop, batch_chunks, allow_removal) -> report.
SyncOne = Callable[[Generation, Progress | None, Callable[[], bool] | None, int | None, bool], SyncReport]


class Generations:
    """The generations of one index folder. `current` follows `CURRENT` as other processes switch it
    (the old generation is dropped, not closed: a request still using it finishes)."""

    def __init__(self, index_dir: Path, open_generation: Callable[[Path], Generation]) -> None:
        self.index_dir = index_dir
        self.open = open_generation
        self._current: Generation | None = None

    @property
    def current(self) -> Generation:
        """The generation readers use now, opened on first use. Raises ConfigError when `CURRENT` cannot be
        read or is damaged."""
        if self._current is None:
            self._current = self.open(current(self.index_dir))
        return self._current

    def follow(self) -> None:
        """Move to the generation `CURRENT` names now, if another process (or a rebuild) switched it."""
        if self._current is not None and current(self.index_dir) != self._current.path:
            self._current = None

    def close(self) -> None:
        """Close the current generation, if one was opened."""
        if self._current is not None:
            self._current.close()

    @contextmanager
    def writer(self, fingerprint: Callable[[], str], sync_one: SyncOne) -> Iterator["Writer"]:
        """Hold the index's writer lock (IndexLockedError when another process writes) and yield the
        Writer. A folder that cannot be written (disk full, read-only, no permission) becomes one
        IndexWriteError naming it; the index as it was stays searchable."""
        try:
            with writer_lock(self.index_dir):
                yield Writer(self, fingerprint, sync_one)
        except (OSError, sqlite3.Error) as exc:
            failure = write_failure(exc, self.index_dir)
            if failure is None:
                raise
            raise failure from exc


class Writer:
    """The one way to write an index, made only by `Generations.writer()` (the lock is held)."""

    def __init__(self, generations: Generations, fingerprint: Callable[[], str], sync_one: SyncOne) -> None:
        self.generations = generations
        self._fingerprint = fingerprint
        self._sync_one = sync_one

    def sync(self, progress: Progress | None = None, stop: Callable[[], bool] | None = None,
             batch_chunks: int | None = None, allow_removal: bool = False) -> SyncReport:
        """One repair-then-sync pass of the current generation. When the settings' fingerprint (model,
        chunker, schema, store) differs from the one the current generation was built with, the next
        generation is built (or resumed) beside it instead, and switched to once complete."""
        gen = self.generations.current
        built = gen.manifest.get_meta("fingerprint") if gen.exists else None
        if built is not None and built != self._fingerprint():
            return self.rebuild(progress, stop, batch_chunks, resume=True)
        report = self._sync_one(gen, progress, stop, batch_chunks, allow_removal)
        if not (self.generations.index_dir / CURRENT).exists():
            switch(self.generations.index_dir, gen.path)
        return report

    def rebuild(self, progress: Progress | None = None, stop: Callable[[], bool] | None = None,
                batch_chunks: int | None = None, resume: bool = False) -> SyncReport:
        """Build the next generation and switch to it only once complete; a stopped or killed build
        leaves the current one in use. With `resume`, an unfinished generation built for these same
        settings is completed rather than started again (an hour of embedding is not thrown away). A
        build that runs out of space removes itself at once."""
        index_dir = self.generations.index_dir
        previous = self.generations.current.path
        target = (self._unfinished(previous) if resume else None) or following(index_dir)
        builder = self.generations.open(target)
        try:
            report = self._sync_one(builder, progress, stop, batch_chunks, True)
        except (OSError, sqlite3.Error) as exc:
            builder.close()
            if write_failure(exc, index_dir) is not None:
                prune(index_dir, keep={previous})
            raise
        finally:
            builder.close()
        if stop is not None and stop():
            return report
        switch(index_dir, target)
        prune(index_dir, keep={target, previous})
        self.generations.follow()
        return report

    def _unfinished(self, current_path: Path) -> Path | None:
        latest = newest(self.generations.index_dir)
        if latest is None or latest == current_path or not (latest / "manifest.sqlite3").is_file():
            return None
        candidate = self.generations.open(latest)
        try:
            return latest if candidate.manifest.get_meta("fingerprint") == self._fingerprint() else None
        finally:
            candidate.close()

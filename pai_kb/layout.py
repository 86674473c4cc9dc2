"""Where an index's files live. Each build of an index is a generation, a folder `gen-N` under the
index folder holding the manifest and the embedded vector store; the file `CURRENT` names the one
readers use. A rebuild (or a model or chunker change) builds the next generation beside the current
one and switches `CURRENT` with one atomic rename, so readers see the old index or the new one, never
none; a build killed half-way leaves `CURRENT` as it was (`--rebuild` then starts afresh, a settings
change resumes it). The
generation before the current one is kept, so a reader still on it finishes its request; older ones
are removed by the next switch — only folders pai-kb can prove it made (`ours`): a rebuild never deletes
a folder someone else named `gen-7`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
from pathlib import Path

from pai_kb.errors import ConfigError, IndexWriteError

CURRENT = "CURRENT"
MARKER = ".pai-kb-generation"
_OLD_CONTENTS = frozenset(("manifest.sqlite3", "manifest.sqlite3-wal", "manifest.sqlite3-shm", "chroma"))
_GENERATION = re.compile(r"gen-(\d+)")


def current(index_dir: Path) -> Path:
    """The generation readers use; `gen-1` before anything was built."""
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


def create(generation: Path) -> Path:
    """Make a generation folder with the marker that proves pai-kb made it (only writers call this)."""
    generation.mkdir(parents=True, exist_ok=True)
    marker = generation / MARKER
    if not marker.exists():
        marker.write_text("made by pai-kb; the folder is removed when a newer generation replaces it\n",
                          encoding="utf-8")
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
    """Remove generations other than `keep` (unfinished ones included) that pai-kb made (see `ours`);
    returns what was removed."""
    removed = []
    for path in index_dir.glob("gen-*"):
        if _GENERATION.fullmatch(path.name) and path not in keep and ours(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

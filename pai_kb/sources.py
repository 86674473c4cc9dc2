"""Finding the files that make up the knowledge base, with nothing but `os.scandir`.

Discovery must stay cheap — a no-op sync of 6,500 notes is mostly this walk — so it stats and never
reads. Hidden folders (`.obsidian`, `.trash`, `.git`), configured globs and symlinked folders are
skipped; symlinked folders could leave the vault or loop forever.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pai_kb.loaders import INBOX_ONLY, SUFFIXES

_IGNORED_NAMES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")


@dataclass(frozen=True)
class SourceFile:
    root: str
    path: str  # POSIX, relative to its root
    abspath: Path
    mtime_ns: int
    size: int

    @property
    def key(self) -> str:
        return f"{self.root}/{self.path}"


def discover(roots: Mapping[str, Path], exclude: tuple[str, ...] = ()) -> dict[str, SourceFile]:
    found: dict[str, SourceFile] = {}
    for name, root in roots.items():
        if root.is_dir():
            for source in _walk(name, root, exclude):
                found[source.key] = source
    return found


def is_candidate(rel: str, exclude: tuple[str, ...] = (), root: str = "vault") -> bool:
    """Whether a path (relative to its root) would be indexed; the watcher asks the same question."""
    parts = rel.split("/")
    name = parts[-1]
    if any(p.startswith(".") for p in parts) or name.endswith(_IGNORED_NAMES) or name.startswith("~$"):
        return False
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in SUFFIXES or (suffix in INBOX_ONLY and root != "inbox"):
        return False
    return not any(fnmatch.fnmatch(rel, pattern) for pattern in exclude)


def _walk(name: str, root: Path, exclude: tuple[str, ...]) -> Iterator[SourceFile]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                rel = _readable(Path(entry.path).relative_to(root).as_posix())
                if not is_candidate(rel, exclude, name) or not _inside(entry, root):
                    continue
                st = entry.stat()
            except (OSError, RuntimeError):  # RuntimeError: a loop of symlinks
                continue
            yield SourceFile(name, rel, Path(entry.path), st.st_mtime_ns, st.st_size)


def _readable(rel: str) -> str:
    """A name that is not valid UTF-8 (os gives it with surrogate escapes) keyed by its bytes written
    out as `\\xff`, so the index, its SQL and every JSON output can hold it; `abspath` stays the real one."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _inside(entry: os.DirEntry, root: Path) -> bool:
    """A symlinked file is indexed only when it points inside the root (else it may expose anything)."""
    if not entry.is_symlink():
        return entry.is_file(follow_symlinks=False)
    target = Path(entry.path).resolve()
    return target.is_file() and target.is_relative_to(root.resolve())

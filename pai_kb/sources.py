"""Finding the files that make up the knowledge base, with nothing but `os.scandir`.

Discovery must stay cheap — a no-op sync of 6,500 notes is mostly this walk — so it stats and never
reads. Hidden folders (`.obsidian`, `.trash`, `.git`) are skipped; exclude patterns follow .gitignore
rules. Whatever looks like material but cannot be read (a FIFO or socket named `.md`, a symlink loop,
a folder pai-kb may not list, a symlinked folder, a symlink leading outside its root) is still listed,
as a `SourceFile` with a `problem`, so the sync can say so instead of dropping it in silence.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pathspec import GitIgnoreSpec
from pathspec.patterns import GitWildMatchPattern

from pai_kb.audio import SUFFIXES as AUDIO_SUFFIXES
from pai_kb.loaders import INBOX_ONLY, SUFFIXES

_IGNORED_NAMES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


@dataclass(frozen=True)
class SourceFile:
    """One entry found on disk. Stat fields are in nanoseconds and bytes; `inode` and `ctime_ns` let
    the sync see a rewrite that kept size and mtime. An entry with a `problem` cannot be read and is
    recorded as skipped with that reason."""
    root: str
    path: str  # POSIX, relative to its root
    abspath: Path
    mtime_ns: int
    size: int
    ctime_ns: int = 0
    inode: int = 0
    problem: str | None = None

    @property
    def key(self) -> str:
        """`root/path`, the file's identity in the index (see `models.DocKey`)."""
        return f"{self.root}/{self.path}"


@dataclass(frozen=True)
class Scan:
    """What one walk found: every entry by key, and how many files each exclude pattern excluded
    (pattern -> count, in the order given; a pattern re-including with `!` counts 0)."""
    files: dict[str, SourceFile]
    excluded: dict[str, int] = field(default_factory=dict)


def scan(roots: Mapping[str, Path], exclude: tuple[str, ...] = ()) -> Scan:
    """Walk every root once. Raises nothing for unreadable entries: they come back with a `problem`."""
    found: dict[str, SourceFile] = {}
    counts = dict.fromkeys(exclude, 0)
    for name, root in roots.items():
        if root.is_dir():
            for source in _walk(name, root, exclude, counts):
                found[source.key] = source
    return Scan(found, counts)


def discover(roots: Mapping[str, Path], exclude: tuple[str, ...] = ()) -> dict[str, SourceFile]:
    """Every entry of `scan`, by key."""
    return scan(roots, exclude).files


def is_candidate(rel: str, exclude: tuple[str, ...] = (), root: str = "vault") -> bool:
    """Whether a path (relative to its root) would be indexed; the watcher asks the same question."""
    return _eligible(rel, root) and not excluded(rel, exclude)


def excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    """Whether .gitignore-style `exclude` patterns leave out `rel` (a folder when it ends in `/`)."""
    return bool(exclude) and _spec(exclude).match_file(rel)


def literal_pattern(folder: str) -> str:
    """An exclude pattern for exactly this folder at the root, whatever characters its name holds."""
    return f"/{GitWildMatchPattern.escape(folder.strip('/'))}/"


def check_patterns(patterns: tuple[str, ...]) -> None:
    """Raises ValueError naming the first pattern that is not a valid .gitignore pattern."""
    for pattern in patterns:
        try:
            GitIgnoreSpec.from_lines([pattern])
        except ValueError as exc:
            raise ValueError(f'"{pattern}" is not a valid .gitignore pattern ({exc})') from None


@lru_cache(maxsize=32)
def _spec(exclude: tuple[str, ...]) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(exclude)


def _eligible(rel: str, root: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    if any(p.startswith(".") for p in parts) or name.endswith(_IGNORED_NAMES) or name.startswith("~$"):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return (suffix in SUFFIXES or suffix in AUDIO_SUFFIXES) and not (suffix in INBOX_ONLY and root != "inbox")


def _walk(name: str, root: Path, exclude: tuple[str, ...], counts: dict[str, int]) -> Iterator[SourceFile]:
    real_root = root.resolve()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            rel = _readable(folder.relative_to(root).as_posix())
            if folder != root and not excluded(rel + "/", exclude):
                yield _problem(name, root, folder, f"folder cannot be listed ({exc.strerror}); its files are "
                               "not indexed: check its permissions")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = _readable(Path(entry.path).relative_to(root).as_posix())
            try:
                found = _entry(name, root, real_root, entry, rel, exclude, counts, stack)
            except OSError as exc:
                found = _problem(name, root, Path(entry.path), f"cannot be read ({exc.strerror})")
            if found is not None:
                yield found


def _entry(name: str, root: Path, real_root: Path, entry: os.DirEntry, rel: str, exclude: tuple[str, ...],
           counts: dict[str, int], stack: list[Path]) -> SourceFile | None:
    """One directory entry: a folder is pushed on `stack`; a file comes back (with a problem when it
    cannot be read); what is hidden by name, suffix or pattern gives None."""
    if entry.is_dir(follow_symlinks=False):
        stack.append(Path(entry.path))  # walked even when excluded: its files are counted
        return None
    if entry.is_symlink() and os.path.isdir(entry.path):
        if excluded(rel + "/", exclude):
            return None
        return _problem(name, root, Path(entry.path), "a symlinked folder; not followed (it could leave the "
                        "folder or loop): link the files, or move the folder in")
    if not _eligible(rel, name):
        return None
    if excluded(rel, exclude):
        _count(rel, exclude, counts)
        return None
    if entry.is_symlink():
        return _link(name, root, real_root, entry, rel)
    st = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        return _problem(name, root, Path(entry.path), f"{_kind(st.st_mode)}, not a regular file; not indexed")
    return SourceFile(name, rel, Path(entry.path), st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)


def _count(rel: str, exclude: tuple[str, ...], counts: dict[str, int]) -> None:
    """Credit the pattern that decided to exclude the file `rel`."""
    index = _spec(exclude).check_file(rel).index
    if index is not None:
        counts[exclude[index]] += 1


def _link(name: str, root: Path, real_root: Path, entry: os.DirEntry, rel: str) -> SourceFile:
    """A symlinked file is indexed only when it leads to a regular file inside its root (else it may
    expose anything); a loop, a dangling link or one leading out is a problem."""
    try:
        st = os.stat(entry.path)
    except OSError as exc:
        why = "a symlink loop" if exc.errno == errno.ELOOP else "a broken symlink (its target is missing)"
        return _problem(name, root, Path(entry.path), f"{why}; not indexed")
    if not Path(os.path.realpath(entry.path)).is_relative_to(real_root):
        return _problem(name, root, Path(entry.path), f"a symlink to outside the {name} folder; not followed")
    if not stat.S_ISREG(st.st_mode):
        return _problem(name, root, Path(entry.path), f"a symlink to {_kind(st.st_mode)}; not indexed")
    return SourceFile(name, rel, Path(entry.path), st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino)


def _problem(name: str, root: Path, path: Path, why: str) -> SourceFile:
    """An entry that cannot be read, with the link's or folder's own stat so a change is noticed."""
    rel = _readable(path.relative_to(root).as_posix())
    try:
        st = os.lstat(path)
        return SourceFile(name, rel, path, st.st_mtime_ns, st.st_size, st.st_ctime_ns, st.st_ino, why)
    except OSError:
        return SourceFile(name, rel, path, 0, 0, 0, 0, why)


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


def _readable(rel: str) -> str:
    """A name that is not valid UTF-8 (os gives it with surrogate escapes) keyed by its bytes written
    out as `\\xff`, so the index, its SQL and every JSON output can hold it; `abspath` stays the real one."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

"""Naming and reading one note: the rules every interface shares (`pai-kb get`, `related`, HTTP
`/notes`, MCP `get_note`).

A note is named by what a person would type: its path (with or without the root or `.md`) or its title.
Reading is confined to indexable files inside the roots: no `..`, no absolute paths, no symlinks out.
Anything else is `NoteNotFound` (with "did you mean" suggestions) or `InvalidRequest`, never an
interface's own exception.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pai_kb.errors import InvalidRequest, NoteNotFound
from pai_kb.models import DocKey
from pai_kb.sources import is_candidate

_LINES = re.compile(r"^(?P<name>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?$")


@dataclass(frozen=True)
class NoteText:
    root: str
    path: str
    text: str  # the whole file, or the requested lines
    line_start: int
    line_end: int
    size: int
    mtime: float


def split_range(spec: str) -> tuple[str, int | None, int | None]:
    """`Note`, `Note:12` or `Note:12-30` → (name, first line, last line)."""
    found = _LINES.match(spec)
    if not found:
        return spec, None, None
    start = int(found["start"])
    end = int(found["end"]) if found["end"] else start
    if start < 1 or end < start:
        raise InvalidRequest(f"line range {start}-{end} is empty; give LINE or FIRST-LAST with FIRST <= LAST")
    return found["name"], start, end


def resolve_note(name: str, titles: Mapping[str, str]) -> str:
    """A doc key from a path or a title; `titles` maps every indexed doc key to its title."""
    wanted = name.strip().removesuffix(".md").lower()
    for key in titles:
        if wanted in (key.lower().removesuffix(".md"), DocKey.parse(key).path.lower().removesuffix(".md")):
            return key
    matches = [k for k, title in titles.items() if wanted in (title.lower(), PurePosixPath(k).stem.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise NoteNotFound(f"'{name}' matches several notes ({', '.join(sorted(matches)[:5])}); give the path",
                           tuple(sorted(matches)[:5]))
    suggestions = _suggest(wanted, titles)
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise NoteNotFound(f"note '{name}' is not in the index{hint} Give its path relative to the vault, "
                       "or run pai-kb index", suggestions)


def _suggest(wanted: str, titles: Mapping[str, str]) -> tuple[str, ...]:
    names: dict[str, str] = {}
    for key, title in titles.items():
        names.setdefault(title.lower(), DocKey.parse(key).path)
        names.setdefault(DocKey.parse(key).path.lower().removesuffix(".md"), DocKey.parse(key).path)
    close = difflib.get_close_matches(wanted, list(names), n=3, cutoff=0.6)
    return tuple(dict.fromkeys(names[c] for c in close))


def check_relative(path: str) -> None:
    """A name that tries to leave its root is refused before anything is looked up."""
    if not path or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts or "\x00" in path:
        raise InvalidRequest("path must be relative to the vault or inbox, without '..'")


def confined(roots: Mapping[str, Path], root: str, path: str, exclude: tuple[str, ...]) -> Path:
    """The file at `path` under the named root, if pai-kb would index it; else an error."""
    if root not in roots:
        raise InvalidRequest(f"unknown root '{root}'; use one of {', '.join(roots)}")
    check_relative(path)
    base = roots[root].resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or not target.is_file() or not is_candidate(path, exclude, root):
        raise NoteNotFound(f"no note at '{path}' in the {root}")
    return target


def read_lines(target: Path, root: str, path: str, start: int | None, end: int | None) -> NoteText:
    text = target.read_text(encoding="utf-8", errors="replace")
    stat = target.stat()
    lines = text.split("\n")
    if start is None or end is None:
        return NoteText(root, path, text, 1, len(lines), stat.st_size, stat.st_mtime)
    if start > len(lines):
        raise InvalidRequest(f"{root}/{path} has {len(lines)} lines; line {start} is past its end")
    end = min(end, len(lines))
    return NoteText(root, path, "\n".join(lines[start - 1:end]), start, end, stat.st_size, stat.st_mtime)

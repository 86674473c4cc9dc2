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

__all__ = ["NoteSpec", "NoteText", "check_relative", "confined", "fragment_lines", "resolve_note", "spec_forms",
           "text_lines"]

_LINES = re.compile(r"^(?P<name>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?$")
_LINK = re.compile(r"^!?\[\[(?P<inner>[^\[\]]+)\]\]$")
_HEADING = re.compile(r"^ {0,3}(?P<marks>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_NOTE_SUFFIXES = (".md", ".markdown")


@dataclass(frozen=True)
class NoteSpec:
    """What a person typed to name a note, taken apart: `name`, and at most one of a line range
    (`Note:12-30`), a heading (`Note#Section`) or a block (`Note#^id`), as Obsidian writes them."""
    name: str
    start: int | None = None
    end: int | None = None
    heading: str | None = None
    block: str | None = None


def unwrap_link(spec: str) -> str:
    """`[[Note#Heading|shown]]` or `![[Note]]` -> `Note#Heading`; anything else unchanged."""
    found = _LINK.match(spec.strip())
    return found["inner"].split("|", 1)[0].strip() if found else spec


def spec_forms(spec: str) -> list[NoteSpec]:
    """The readings of `spec` to try, in order: the whole name first (a note may be called `Standup
    10:30`), then a trailing `:N` or `:N-M` as lines. A `#` starts a heading or `^block` (Obsidian
    allows no `#` in names). Raises InvalidRequest for an empty name or an empty line range."""
    name, _, fragment = unwrap_link(spec).partition("#")
    if not name.strip() and not fragment:
        raise InvalidRequest("the note name is empty; give a path or a title")
    if fragment:
        fragment = fragment.split("#")[-1].strip()  # `Note#A#B` names the subheading B
        if fragment.startswith("^"):
            return [NoteSpec(name, block=fragment[1:])]
        return [NoteSpec(name, heading=fragment)]
    forms = [NoteSpec(name)]
    if _LINES.match(name):
        lines_name, start, end = split_range(name)
        forms.append(NoteSpec(lines_name, start, end))
    return forms


def fragment_lines(text: str, spec: NoteSpec, where: str) -> tuple[int | None, int | None]:
    """The 1-based line range of `spec`'s heading section or block in `text`; (None, None) for a
    whole note or the spec's own line range. Raises NoteNotFound naming the headings there are."""
    if spec.heading is None and spec.block is None:
        return spec.start, spec.end
    lines = text.split("\n")
    if spec.block is not None:
        return _block(lines, spec.block, where)
    return _section(lines, spec.heading or "", where)


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, text) of every heading outside fenced code."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            found.append((i, len(m["marks"]), m["text"].strip()))
    return found


def _section(lines: list[str], heading: str, where: str) -> tuple[int, int]:
    headings = _headings(lines)
    wanted = " ".join(heading.split()).lower()
    for n, (i, level, text) in enumerate(headings):
        if " ".join(text.split()).lower() == wanted:
            end = next((j for j, lv, _ in headings[n + 1:] if lv <= level), len(lines))
            while end - 1 > i and not lines[end - 1].strip():
                end -= 1
            return i + 1, end
    known = ", ".join(repr(t) for _, _, t in headings[:8]) or "none"
    raise NoteNotFound(f"{where} has no heading '{heading}' (its headings: {known})")


def _block(lines: list[str], block_id: str, where: str) -> tuple[int, int]:
    """A block is the paragraph (or list item, quote, table) ending in ` ^id`, or the structure just
    above a line that holds `^id` alone (blank lines between them skipped)."""
    marker = re.compile(rf"(^|\s)\^{re.escape(block_id)}\s*$")
    for i, line in enumerate(lines):
        if marker.search(line):
            last = i
            if line.strip() == f"^{block_id}":  # Obsidian puts a list's or table's id below it, after a blank line
                last = i - 1
                while last > 0 and not lines[last].strip():
                    last -= 1
            first = last
            while first > 0 and lines[first - 1].strip():
                first -= 1
            return first + 1, last + 1
    raise NoteNotFound(f"{where} has no block '^{block_id}'")


@dataclass(frozen=True)
class NoteText:
    """A note's text as read: whole or the requested 1-based inclusive lines, with the file's size in bytes
    and mtime in seconds since the epoch."""
    root: str
    path: str
    text: str  # the whole file, or the requested lines
    line_start: int
    line_end: int
    size: int
    mtime: float


def split_range(spec: str) -> tuple[str, int | None, int | None]:
    """`Note`, `Note:12` or `Note:12-30` → (name, first line, last line). Raises InvalidRequest when the
    range is empty (first line 0, or last before first)."""
    found = _LINES.match(spec)
    if not found:
        return spec, None, None
    start = int(found["start"])
    end = int(found["end"]) if found["end"] else start
    if start < 1 or end < start:
        raise InvalidRequest(f"line range {start}-{end} is empty; give LINE or FIRST-LAST with FIRST <= LAST")
    return found["name"], start, end


def _bare(name: str) -> str:
    """Lower case, without a note extension in any case (`Shout.MD` names `Shout.md`)."""
    lowered = name.strip().lower()
    for suffix in _NOTE_SUFFIXES:
        lowered = lowered.removesuffix(suffix)
    return lowered


def resolve_note(name: str, titles: Mapping[str, str], aliases: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """A doc key from a path, a title or (as Obsidian's quick switcher does) an alias; `titles` maps
    every indexed doc key to its title, `aliases` to its aliases. Raises NoteNotFound, with "did you
    mean" suggestions, when nothing or several notes answer."""
    wanted = _bare(name)
    for key in titles:
        if wanted in (_bare(key), _bare(DocKey.parse(key).path)):
            return key
    matches = [k for k, title in titles.items() if wanted in (title.lower(), _bare(PurePosixPath(k).name))]
    if not matches and aliases:
        matches = [k for k, names in aliases.items() if wanted in (a.strip().lower() for a in names)]
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
    """A name that tries to leave its root is refused before anything is looked up: raises
    InvalidRequest for an empty, absolute or `..` path, or one holding NUL."""
    if not path or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts or "\x00" in path:
        raise InvalidRequest("path must be relative to the vault or inbox, without '..'")


def confined(roots: Mapping[str, Path], root: str, path: str, exclude: tuple[str, ...]) -> Path:
    """The file at `path` under the named root, if pai-kb would index it. Raises InvalidRequest for an
    unknown root or a path leaving it, NoteNotFound when no indexable file is there."""
    if root not in roots:
        raise InvalidRequest(f"unknown root '{root}'; use one of {', '.join(roots)}")
    check_relative(path)
    base = roots[root].resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or not target.is_file() or not is_candidate(path, exclude, root):
        raise NoteNotFound(f"no note at '{path}' in the {root}")
    return target


def read_lines(target: Path, root: str, path: str, start: int | None, end: int | None) -> NoteText:
    """`target`'s text (undecodable bytes replaced), whole when `start`/`end` are None, else lines `start`..
    `end` (1-based, inclusive, `end` capped at the last line). Raises InvalidRequest when `start` is past
    the end."""
    return text_lines(target.read_text(encoding="utf-8", errors="replace"), target, root, path, start, end)


def text_lines(text: str, target: Path, root: str, path: str, start: int | None, end: int | None) -> NoteText:
    """As `read_lines`, for `text` that stands for the file `target` (a recording's transcript)."""
    stat = target.stat()
    lines = text.split("\n")
    if start is None or end is None:
        return NoteText(root, path, text, 1, len(lines), stat.st_size, stat.st_mtime)
    if start > len(lines):
        raise InvalidRequest(f"{root}/{path} has {len(lines)} lines; line {start} is past its end")
    end = min(end, len(lines))
    return NoteText(root, path, "\n".join(lines[start - 1:end]), start, end, stat.st_size, stat.st_mtime)

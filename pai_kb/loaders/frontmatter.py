"""YAML frontmatter: split it off, parse it safely, and normalise the keys Obsidian gives meaning to.

A note with broken YAML is still a note: the body is indexed and the problem reported as a warning.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pai_kb.models import ISO_DATE

__all__ = ["Frontmatter", "document_date", "split_frontmatter", "string_list", "tag_list", "text_properties"]

_MAX_FRONTMATTER = 64 * 1024
_OPEN = re.compile(r"---[ \t]*$")
_CLOSE = re.compile(r"(---|\.\.\.)[ \t]*$")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading, with dates left as the text the person wrote: `created: 2024-02-30` is a typo to
    keep, not a reason for the YAML library to raise (`document_date` reads dates from text anyway)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Frontmatter:
    """A note's YAML frontmatter: its data (empty when absent or refused), the lines it spans, why it was
    ignored if it was, and each key's 1-based line span."""
    data: Mapping[str, Any] = field(default_factory=dict)
    line_count: int = 0  # lines the block occupies, fences included; the body starts after them
    warning: str | None = None
    # key -> (first, last) 1-based line of the file its entry occupies, so a property can be cited
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def split_frontmatter(lines: list[str]) -> Frontmatter:
    """The frontmatter at the top of `lines` (a file split at newlines); empty when there is none. With a
    warning and no data when it never closes (then read as body) or cannot be used (then skipped)."""
    if not lines or not _OPEN.match(lines[0]):
        return Frontmatter()
    for end in range(1, len(lines)):
        if _CLOSE.match(lines[end]):
            return _parse("\n".join(lines[1:end]), end + 1)
    return Frontmatter(warning="frontmatter has no closing '---'; treated as body text")


def _parse(text: str, line_count: int) -> Frontmatter:
    if len(text) > _MAX_FRONTMATTER:
        return Frontmatter(line_count=line_count, warning="frontmatter over 64 KB ignored")
    try:
        # Anchors and aliases are refused outright: they are never needed in note metadata and are
        # how a "billion laughs" block explodes when the data is later serialised.
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=_Loader)):
            return Frontmatter(line_count=line_count, warning="frontmatter uses YAML aliases; ignored")
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Frontmatter(line_count=line_count, warning=f"frontmatter is not valid YAML ({first}); body indexed")
    if data is None:
        return Frontmatter(line_count=line_count)
    if not isinstance(data, dict):
        return Frontmatter(line_count=line_count, warning="frontmatter is not a key: value mapping; ignored")
    return Frontmatter(data=plain(data), line_count=line_count, spans=_spans(node))


def _spans(node: yaml.MappingNode) -> dict[str, tuple[int, int]]:
    """Each top-level key's lines in the file: YAML marks are 0-based within the block, which starts on
    the file's second line; a block value's end mark sits at column 0 of the line after it."""
    spans = {}
    for key, value in node.value:
        end = value.end_mark.line
        if value.end_mark.column == 0 and end > key.start_mark.line:
            end -= 1
        spans[str(key.value)] = (key.start_mark.line + 2, end + 2)
    return spans


def plain(value: Any, depth: int = 0) -> Any:
    """JSON-safe copy: dates become ISO strings, keys strings; depth-limited against pathological input."""
    if depth > 20:
        return None
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def string_list(value: Any) -> tuple[str, ...]:
    """Obsidian accepts `aliases`/`tags` as a list, a single string, or comma-separated text; empty items
    (common in generated notes: `tags: [ ]` or `- `) are dropped."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else re.split(r",", str(value))
    out = []
    for item in items:
        if isinstance(item, (dict, list)) or item is None:
            continue
        text = str(item).strip()
        if text:
            out.append(text)
    return tuple(dict.fromkeys(out))


def tag_list(value: Any) -> tuple[str, ...]:
    """Tags from `tags:` in any of its forms; a space or a comma ends a tag (neither is a tag character)."""
    tags = []
    for item in string_list(value):
        tags.extend(t.lstrip("#") for t in re.split(r"[\s,]+", item) if t.lstrip("#"))
    return tuple(dict.fromkeys(tags))


_DATE_KEYS = ("date", "published", "created", "updated")
# Keys whose values are not what the note says: Obsidian's and Obsidian Publish's settings, pai-kb's own
# bookkeeping, dates, and the keys that have a place of their own (title, aliases, tags).
HOUSEKEEPING = frozenset({
    "title", "aliases", "alias", "tags", "tag", "cssclasses", "cssclass", "permalink", "publish", "image", "cover",
    "pai-kb-source", "pai-kb-hash", "modified", *_DATE_KEYS})
# Strings that are not words to search: dates and times, numbers, URLs.
_NOT_WORDS = re.compile(ISO_DATE + r"([T ][\d:.+Z-]*)?|[-+]?\d+([.,:]\d+)*|[a-z][a-z0-9+.-]*://\S*", re.I)


def property_text(value: Any) -> str | None:
    """A property's value as searchable words: a string, or the strings of a list joined by ", ", with
    whitespace runs made one space. None for numbers, booleans, dates, URLs and nested mappings."""
    items = value if isinstance(value, list) else [value]
    words = [" ".join(item.split()) for item in items if isinstance(item, str)]
    words = [w for w in words if w and not _NOT_WORDS.fullmatch(w)]
    return ", ".join(words) or None


def text_properties(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, words) of every property worth searching, in the frontmatter's order (see `HOUSEKEEPING`).
    `meta` should have links already rendered as their shown text."""
    found = []
    for key, value in meta.items():
        text = None if key.lower() in HOUSEKEEPING else property_text(value)
        if text:
            found.append((key, text))
    return found


def document_date(meta: Mapping[str, Any]) -> str | None:
    """The date the material itself gives (ISO `YYYY-MM-DD`), from the keys notes and clippers use.
    Non-ISO forms ("June 18, 2024", "18/06/2024") are read by dateutil, day first when ambiguous."""
    for key in _DATE_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            parsed = parse_date(value)
            if parsed:
                return parsed
    return None


def parse_date(text: str) -> str | None:
    """`text` as an ISO date (YYYY-MM-DD): its leading ISO date, else any form dateutil reads, day first;
    None when it is no date."""
    iso = re.match(ISO_DATE, text.strip())
    if iso:
        return iso.group(0)
    from dateutil import parser

    try:
        return parser.parse(text, dayfirst=True, fuzzy=False).date().isoformat()
    except (ValueError, OverflowError):
        return None

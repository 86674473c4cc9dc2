"""Obsidian's own syntax on top of markdown: wikilinks, embeds, inline tags, comments, block ids, callouts.

Pure string functions, so each rule is tested with literal inputs. They are given prose only: the
markdown loader cuts inline code out first (with markdown-it's code-span rule), because inside code
`[[x]]`, `#tag` and `%%` are text the person wrote on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# [[target#heading|alias]] or ![[...]]; `\|` is how a table cell escapes the alias bar.
_WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
# Obsidian tags: letters, digits, _, -, / ; at least one non-digit; preceded by start or whitespace.
_TAG = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[(\[,]))#([^\s#!\"$%&'()*+,.:;<=>?@\[\\\]^`{|}~]+)", re.M)
_BLOCK_ID = re.compile(r"\s\^[A-Za-z0-9-]+\s*$", re.M)
_CALLOUT = re.compile(r"^\[!(\w[\w-]*)\][+-]?\s*(.*)$")
_ATTACHMENT = re.compile(r"\.(png|jpe?g|gif|svg|webp|bmp|mp4|webm|mov|mp3|ogg|wav|m4a|pdf|canvas|base)$", re.I)


@dataclass(frozen=True)
class Link:
    target: str  # note name or path, without heading
    heading: str  # heading or ^block, "" when none
    alias: str
    embed: bool


def parse_links(text: str) -> list[Link]:
    return [_parse_link(m) for m in _WIKILINK.finditer(text)]


def _parse_link(match: re.Match[str]) -> Link:
    inner = match.group(2)
    target_part, *rest = re.split(r"\\?\|", inner, maxsplit=1)
    alias = rest[0] if rest else ""
    target, _, heading = target_part.partition("#")
    return Link(target=target.strip(), heading=heading.strip(), alias=alias.strip(), embed=bool(match.group(1)))


def render_links(text: str) -> str:
    """Replace links by the words a reader sees, so the model embeds words and not syntax."""
    return _WIKILINK.sub(lambda m: _display(_parse_link(m)), text)


def _display(link: Link) -> str:
    if link.alias:
        return link.alias
    if link.embed and _ATTACHMENT.search(link.target):
        return ""
    heading = "" if link.heading.startswith("^") else link.heading.lstrip("#")
    parts = [p for p in (link.target, heading) if p]
    return " > ".join(parts)


def strip_comments(lines: list[str], code_spans: Callable[[str], list[tuple[int, int]]] = lambda _: []) -> list[str]:
    """Blank out `%% comments %%` outside code fences and outside inline code (`code_spans` finds it in
    a line), keeping line count so line numbers stay true.

    An unclosed `%%` is kept as text: dropping the rest of a note on a stray `%%` would lose content."""
    out = list(lines)
    fence: str | None = None
    start: tuple[int, int] | None = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if start is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
            continue
        if fence:
            continue
        col = 0
        spans = code_spans(line) if "%%" in line and start is None else []
        while (pos := line.find("%%", col)) != -1:
            inside = next((end for begin, end in spans if begin <= pos < end), None)
            if inside is not None:
                col = inside
                continue
            if start is None:
                start = (i, pos)
            else:
                _blank(out, start, (i, pos + 2))
                start = None
            col = pos + 2
    return out


def _blank(out: list[str], start: tuple[int, int], end: tuple[int, int]) -> None:
    (li, ci), (lj, cj) = start, end
    if li == lj:
        out[li] = out[li][:ci] + " " * (cj - ci) + out[li][cj:]
        return
    out[li] = out[li][:ci]
    for k in range(li + 1, lj):
        out[k] = ""
    out[lj] = " " * cj + out[lj][cj:]


def inline_tags(text: str) -> list[str]:
    """Tags written in prose; the caller passes only non-code, non-heading text."""
    text = _WIKILINK.sub(" ", text)
    return [t for t in _TAG.findall(text) if not t.replace("/", "").isdigit()]


def strip_block_ids(text: str) -> str:
    return _BLOCK_ID.sub("", text)


def callout_header(first_line: str) -> tuple[str, str] | None:
    """`[!type] Title` → (type, title) for the first line of a blockquote, else None."""
    match = _CALLOUT.match(first_line.strip())
    return (match.group(1).lower(), match.group(2).strip()) if match else None

"""Obsidian's own syntax on top of markdown: wikilinks, embeds, inline tags, comments, block ids, callouts.

Pure string functions, so each rule is tested with literal inputs. They are given prose only: the
markdown loader cuts inline code out first (by CommonMark's code-span rule), because inside code
`[[x]]`, `#tag` and `%%` are text the person wrote on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["callout_header", "escape", "inline_tags", "keyword_tags", "parse_links", "render_links", "strip_block_ids",
           "strip_comments", "unescape", "valid_tag"]

# [[target#heading|alias]] or ![[...]]; `\|` is how a table cell escapes the alias bar.
_WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
# Obsidian tags: letters, digits, _, -, / ; at least one non-digit; preceded by start or whitespace.
_TAG = re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[(\[,]))#([^\s#!\"$%&'()*+,.:;<=>?@\[\\\]^`{|}~]+)", re.M)
_BLOCK_ID = re.compile(r"\s\^[A-Za-z0-9-]+\s*$", re.M)
_CALLOUT = re.compile(r"^\[!(\w[\w-]*)\][+-]?\s*(.*)$")
_ATTACHMENT = re.compile(r"\.(png|jpe?g|gif|svg|webp|bmp|mp4|webm|mov|mp3|ogg|wav|m4a|pdf|canvas|base)$", re.I)


@dataclass(frozen=True)
class Link:
    """One `[[target#heading|alias]]` wikilink (`embed`: written `![[...]]`)."""
    target: str  # note name or path, without heading
    heading: str  # heading or ^block, "" when none
    alias: str
    embed: bool


def parse_links(text: str) -> list[Link]:
    """Every wikilink in `text`, in order."""
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


def strip_comments(lines: list[str],
                   code_spans: Callable[[str], Sequence[tuple[int, int]]] = lambda _: ()) -> list[str]:
    """Blank out `%% comments %%` outside code fences and outside inline code (`code_spans` finds it in
    a line, as ordered non-overlapping (start, end) ranges), keeping line count so line numbers stay true.

    An unclosed `%%` is kept as text: dropping the rest of a note on a stray `%%` would lose content.
    Linear in the text: the ranges to blank are collected per line, then each line is rebuilt once."""
    if not any("%%" in line for line in lines):
        return list(lines)
    blanks: dict[int, list[tuple[int, int | None]]] = {}  # line -> column ranges; end None: to the line's end
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
        spans = iter(code_spans(line) if "%%" in line and start is None else ())
        span = next(spans, None)
        col = 0
        while (pos := line.find("%%", col)) != -1:
            while span is not None and span[1] <= pos:
                span = next(spans, None)
            if span is not None and span[0] <= pos:
                col = span[1]
                continue
            if start is None:
                start = (i, pos)
            else:
                _mark(blanks, start, (i, pos + 2))
                start = None
            col = pos + 2
    out = list(lines)
    for i, ranges in blanks.items():
        out[i] = _blanked(out[i], ranges)
    return out


def _mark(blanks: dict[int, list[tuple[int, int | None]]], start: tuple[int, int], end: tuple[int, int]) -> None:
    """Record the comment from `start` to `end` ((line, column), end exclusive) as ranges to blank: spaces
    within one line; across lines the first line is cut, the lines between emptied, the last one padded."""
    (li, ci), (lj, cj) = start, end
    if li == lj:
        blanks.setdefault(li, []).append((ci, cj))
        return
    blanks.setdefault(li, []).append((ci, None))
    for k in range(li + 1, lj):
        blanks.setdefault(k, []).append((0, None))
    blanks.setdefault(lj, []).append((0, cj))


def _blanked(line: str, ranges: list[tuple[int, int | None]]) -> str:
    """`line` with each (begin, end) range, in order, made spaces; an end of None cuts the line there."""
    pieces: list[str] = []
    pos = 0
    for begin, end in ranges:
        pieces.append(line[pos:begin])
        if end is None:
            return "".join(pieces)
        pieces.append(" " * (end - begin))
        pos = end
    pieces.append(line[pos:])
    return "".join(pieces)


def inline_tags(text: str) -> list[str]:
    """Tags written in prose; the caller passes only non-code, non-heading text."""
    text = _WIKILINK.sub(" ", text)
    return [t for t in _TAG.findall(text) if not t.replace("/", "").isdigit()]


_NOT_TAG_CHAR = re.compile(r"[^\w/-]+")
# What `escape` makes literal, and `unescape` reads back: the backslash before each character.
_ESCAPED = re.compile(r"\\([#\[\]%^])")
_COMMENT = re.compile(r"%%")
_LINK_BRACKETS = re.compile(r"\[\[|\]\]")


def valid_tag(text: str) -> str | None:
    """`text` as a valid Obsidian tag: `#` dropped, spaces made `-`, characters other than letters,
    digits, `_`, `-` and `/` dropped. None when nothing is left or only digits (not a tag in Obsidian)."""
    tag = _NOT_TAG_CHAR.sub("", "-".join(text.replace("#", " ").split())).strip("-/")
    return tag if tag and not tag.replace("/", "").isdigit() else None


def keyword_tags(text: str) -> list[str]:
    """A page's keywords (`coffee, espresso grinder; #brewing`) as tags: one per comma- or
    semicolon-separated keyword (`coffee`, `espresso-grinder`, `brewing`)."""
    tags = (valid_tag(part) for part in re.split(r"[,;]", text))
    return list(dict.fromkeys(t for t in tags if t))


def escape(text: str) -> str:
    """Prose (no code) with Obsidian's syntax made literal, as Obsidian shows a backslash-escaped
    character: `#tag` -> `\\#tag`, `[[x]]` and `![[x]]` -> `\\[\\[x\\]\\]`, `%%` -> `\\%\\%`, a trailing ` ^id`
    -> ` \\^id`. `unescape` (which the loader applies) gives the text back."""
    text = _LINK_BRACKETS.sub(lambda m: "\\" + m.group(0)[0] + "\\" + m.group(0)[1], text)
    text = _COMMENT.sub(r"\\%\\%", text)
    text = _TAG.sub(r"\\#\1", text)
    return _BLOCK_ID.sub(lambda m: m.group(0).replace("^", "\\^", 1), text)


def unescape(text: str) -> str:
    """The characters `escape` protects, without their backslash: the text a reader sees."""
    return _ESCAPED.sub(r"\1", text)


def strip_block_ids(text: str) -> str:
    """`text` without Obsidian block ids (` ^id` at a line's end)."""
    return _BLOCK_ID.sub("", text)


def callout_header(first_line: str) -> tuple[str, str] | None:
    """`[!type] Title` → (type, title) for the first line of a blockquote, else None."""
    match = _CALLOUT.match(first_line.strip())
    return (match.group(1).lower(), match.group(2).strip()) if match else None

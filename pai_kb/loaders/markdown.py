"""Markdown and Obsidian notes → `Document`: frontmatter, top-level blocks with true line numbers,
tags, aliases and links. markdown-it-py owns the structure: block tokens say what is a code fence or a
table, and CommonMark's code-span rule (as markdown-it applies it) says which characters of prose are
inline code, so Obsidian's syntax (links, tags, `%% comments %%`) is read only outside code and code keeps
its text verbatim."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.token import Token

from pai_kb.loaders import obsidian
from pai_kb.loaders.frontmatter import Frontmatter, split_frontmatter, string_list, tag_list, text_properties
from pai_kb.models import Block, Document

__all__ = ["MAX_LINES", "MAX_PARSE_STEPS", "code_spans", "escape_markdown", "load_markdown"]

_KINDS = {
    "heading_open": "heading", "paragraph_open": "paragraph", "fence": "code", "code_block": "code",
    "table_open": "table", "bullet_list_open": "list", "ordered_list_open": "list",
    "blockquote_open": "quote", "hr": "hr", "html_block": "html",
}
_PROSE = {"paragraph", "list", "quote", "table"}


# markdown-it's block parser is linear but slow: 15-30 µs a line (4 s for 1 MB of `# h` lines), 5 µs a
# token (14 s for 1 MB of `- - - ... x` lines nested 12 deep), and each top-level block costs as much again
# here. Past either bound `_line_blocks` is used instead, so one pathological note cannot stall a sync.
# Real notes stay far below both: of the 6,763 in the Obsidian Help and Hub vaults the largest has 2,946
# lines, the busiest 26,000 steps (parser probes plus tokens).
MAX_LINES = 20_000
MAX_PARSE_STEPS = 150_000


class _TooComplex(Exception):
    """markdown-it's work on one note passed `MAX_PARSE_STEPS`."""


def _count_steps(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """A block rule that never matches: markdown-it tries it first at every block, and as a terminator at
    every line a paragraph, list, quote or table continues to, so it sees the parser's work as it goes
    (probes plus tokens made) and stops it past `MAX_PARSE_STEPS`."""
    steps = state.env["steps"] = state.env.get("steps", 0) + 1
    if steps + len(state.tokens) > MAX_PARSE_STEPS:
        raise _TooComplex
    return False


def _parser() -> MarkdownIt:
    # Only block structure is needed (inline text is taken from the source lines), and inline parsing
    # was over half of the loader's time on a 6,500-note vault.
    md = MarkdownIt("commonmark", {"maxNesting": 40}).enable("table").disable(["inline", "text_join"])
    md.block.ruler.before("table", "count_steps", _count_steps,
                          {"alt": ["paragraph", "reference", "blockquote", "list"]})
    return md


_MD = _parser()
# The line-based pass ends a block at a blank line once it has this many lines, and always at the most.
_LINE_BLOCK_MIN, _LINE_BLOCK_MAX = 20, 100
_BACKTICK_RUN = re.compile(r"`+")


@lru_cache(maxsize=8)  # a block's text is cut for its links and tags, then again to render it
def code_spans(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) character ranges of the inline code spans in `text`, in order, by CommonMark's
    code-span rule as markdown-it applies it to prose: a run of n backticks opens a span that the next
    run of exactly n backticks closes; a run with no such closer is plain text. Linear in `text`
    (markdown-it's own inline parser costs about 4 s per MB of `` `~~ ``, a token per span)."""
    if "`" not in text:
        return ()
    runs = [m.span() for m in _BACKTICK_RUN.finditer(text)]
    last = {end - start: index for index, (start, end) in enumerate(runs)}  # run length -> its last run
    spans: list[tuple[int, int]] = []
    opener = (0, 0)  # (start, length) of the open span; length 0: none open
    for index, (start, end) in enumerate(runs):
        if opener[1]:
            if end - start == opener[1]:
                spans.append((opener[0], end))
                opener = (0, 0)
        elif last[end - start] > index:
            opener = (start, end - start)
    return tuple(spans)


def segments(text: str) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is_code) in order; joined back, the pieces are `text` again."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for start, end in code_spans(text):
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text) or not out:
        out.append((text[pos:], False))
    return out


def _prose(text: str) -> str:
    """The parts of `text` that are not inline code, code replaced by a space."""
    return " ".join(piece for piece, code in segments(text) if not code)


def _outside_code(text: str, rewrite: Callable[[str], str], needs: str = "") -> str:
    """`text` with `rewrite` applied to its prose pieces; `needs`, when given, is a substring without
    which `rewrite` changes nothing, so text without it is returned as is, uncut."""
    if needs and needs not in text:
        return text
    return "".join(piece if code else rewrite(piece) for piece, code in segments(text))


def load_markdown(text: str, root: str, path: str, warnings: tuple[str, ...] = ()) -> Document:
    """An Obsidian note as a document: frontmatter properties as a block, body blocks with their source lines
    (a line-based pass for notes too large to parse), title, aliases, tags, link targets and URL; a
    frontmatter problem is a warning, never an error."""
    lines = text.split("\n")
    front = split_frontmatter(lines)
    meta: dict[str, Any] = {k: _render_value(v) for k, v in front.data.items()}
    body_lines = [""] * front.line_count + obsidian.strip_comments(lines[front.line_count:], code_spans)
    tokens = _block_tokens("\n".join(body_lines), len(lines))
    if tokens is None:
        body = _line_blocks(body_lines)
        warnings += (f"{root}/{path}: over {MAX_LINES:,} lines or {MAX_PARSE_STEPS:,} markdown parser steps; "
                     "indexed with a line-based pass (paragraphs, no headings, lists or tables)",)
    else:
        body = _blocks(body_lines, tokens)
    title = str(meta.get("title") or "").strip() or PurePosixPath(path).stem
    blocks = _properties(front, meta, title, bool(body)) + body
    tags = list(tag_list(meta.get("tags") or meta.get("tag")))
    links: list[str] = []
    for block in blocks:
        if block.kind in _PROSE or block.kind == "heading":
            prose = _prose(block.text)
            links.extend(link.target for link in obsidian.parse_links(prose) if link.target)
            if block.kind != "heading":
                tags.extend(obsidian.inline_tags(prose))
    all_warnings = warnings + ((f"{root}/{path}: {front.warning}",) if front.warning else ())
    url = _url(meta)
    return Document(
        root=root, path=path, title=title, source_type="webclip" if url else "note",
        blocks=tuple(b for b in map(_clean, blocks) if b.text or b.kind == "heading"),  # `>` alone has no words
        aliases=string_list(meta.get("aliases") or meta.get("alias")),
        tags=tuple(dict.fromkeys(tags)), links=tuple(dict.fromkeys(links)),
        metadata=meta, url=url, warnings=all_warnings,
    )


def _properties(front: Frontmatter, meta: dict[str, Any], title: str, has_body: bool) -> list[Block]:
    """The frontmatter's searchable properties as one block (`key: value` lines) cited at their own
    lines, so property values are found like body text. A note that is only frontmatter gets a block
    even without such properties (its title), so it has a chunk and is found by title, aliases and tags."""
    found = text_properties(meta)
    if found:
        spans = [front.spans.get(key, (1, front.line_count)) for key, _ in found]
        text = "\n".join(f"{key}: {value}" for key, value in found)
        return [Block("properties", text, min(s for s, _ in spans), max(e for _, e in spans))]
    if not has_body and front.line_count:
        start, end = front.spans.get("title", (1, front.line_count))
        return [Block("properties", title, start, end)]
    return []


def escape_markdown(text: str) -> str:
    """`text` with Obsidian's syntax made literal outside code (see `obsidian.escape`): for text pai-kb
    writes into a vault, so that no tag, link, comment or block id appears that the text did not mean.
    Code blocks and inline code are kept verbatim; past the parser's bounds, as in the loader's line-based
    pass, fenced code is kept as inline code is and indented code is escaped like prose."""
    lines = text.split("\n")
    code = set()
    for tok in _block_tokens(text, len(lines)) or ():
        if tok.type in ("fence", "code_block") and tok.map:
            code.update(range(*tok.map))
    out: list[str] = []
    prose: list[str] = []
    for i, line in enumerate(lines):
        if i in code:
            out.extend(_escape_prose(prose))
            prose = []
            out.append(line)
        else:
            prose.append(line)
    return "\n".join(out + _escape_prose(prose))


def _escape_prose(lines: list[str]) -> list[str]:
    return _outside_code("\n".join(lines), obsidian.escape).split("\n") if lines else []


def _render_value(value: Any) -> Any:
    """Web Clipper writes `author: "[[Kevin Kelly]]"`: metadata should hold the name, not the syntax
    (and a link pai-kb escaped as `\\[\\[x\\]\\]` is read back as the text `[[x]]`)."""
    if isinstance(value, str):
        return obsidian.unescape(obsidian.render_links(value))
    if isinstance(value, list):
        return [_render_value(v) for v in value]
    return value


def _url(meta: dict[str, Any]) -> str | None:
    for key in ("url", "source"):
        value = meta.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def _block_tokens(text: str, line_count: int) -> list[Token] | None:
    """markdown-it's block tokens for `text`; None when it has over `MAX_LINES` lines or takes over
    `MAX_PARSE_STEPS` steps to parse."""
    if line_count > MAX_LINES:
        return None
    try:
        return _MD.parse(text)
    except _TooComplex:
        return None


def _blocks(lines: list[str], tokens: list[Token]) -> list[Block]:
    """Top-level blocks with 1-based inclusive line ranges, their text taken from the source lines and
    their structure from `tokens` (markdown-it's block tokens for the lines)."""
    blocks: list[Block] = []
    for i, tok in enumerate(tokens):
        if tok.level != 0 or tok.map is None or tok.type not in _KINDS:
            continue
        start, end = tok.map
        kind = _KINDS[tok.type]
        if kind == "heading":
            text = tokens[i + 1].content if i + 1 < len(tokens) else ""
            blocks.append(Block("heading", text.strip(), start + 1, start + 1, level=int(tok.tag[1])))
            continue
        raw = "\n".join(lines[start:end]).strip("\n")
        if raw.strip():
            last = start + len(lines[start:end]) - _trailing_blank(lines[start:end])
            blocks.append(Block(kind, raw, start + 1, max(start + 1, last)))
    return blocks


def _line_blocks(lines: list[str]) -> list[Block]:
    """Paragraph blocks of `_LINE_BLOCK_MIN` to `_LINE_BLOCK_MAX` lines, cut at blank lines where one
    comes, with 1-based inclusive line ranges: the bounded pass for notes past the parser's bounds. Fenced
    code inside is still read as code (a fence is a code span to `code_spans`), but headings, lists,
    quotes and tables are plain paragraph text."""
    blocks: list[Block] = []
    start = 0
    for i, line in enumerate(lines):
        size = i + 1 - start
        if size >= _LINE_BLOCK_MAX or (size >= _LINE_BLOCK_MIN and not line.strip()):
            _add_line_block(blocks, lines, start, i + 1)
            start = i + 1
    _add_line_block(blocks, lines, start, len(lines))
    return blocks


def _add_line_block(blocks: list[Block], lines: list[str], start: int, end: int) -> None:
    """Append lines[start:end] (0-based, end exclusive) as a paragraph without its blank edge lines."""
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start < end:
        blocks.append(Block("paragraph", "\n".join(lines[start:end]), start + 1, end))


def _trailing_blank(lines: list[str]) -> int:
    count = 0
    for line in reversed(lines):
        if line.strip():
            break
        count += 1
    return count


def _clean(block: Block) -> Block:
    """The words a reader sees: links rendered, block ids and quote markers dropped, callouts labelled."""
    if block.kind in ("code", "heading", "hr", "html", "properties"):
        text = _outside_code(block.text, _readable) if block.kind == "heading" else block.text
        return Block(block.kind, text, block.line_start, block.line_end, block.level)
    text = block.text
    if block.kind == "quote":
        text = _unquote(text)
    linked = _outside_code(text, obsidian.render_links, needs="[[")
    text = _outside_code(obsidian.strip_block_ids(linked), obsidian.unescape, needs="\\")
    return Block(block.kind, text.strip(), block.line_start, block.line_end, block.level)


def _readable(prose: str) -> str:
    return obsidian.unescape(obsidian.render_links(prose))


def _unquote(text: str) -> str:
    lines = [line.lstrip()[1:].removeprefix(" ") if line.lstrip().startswith(">") else line
             for line in text.split("\n")]
    header = obsidian.callout_header(lines[0]) if lines else None
    if header:
        kind, title = header
        lines[0] = f"{kind.capitalize()}: {title}" if title else f"{kind.capitalize()}:"
    return "\n".join(lines)

"""Markdown and Obsidian notes → `Document`: frontmatter, top-level blocks with true line numbers,
tags, aliases and links. markdown-it-py owns the structure: block tokens say what is a code fence or a
table, and its own code-span rule says which characters of prose are inline code, so Obsidian's syntax
(links, tags, `%% comments %%`) is read only outside code and code keeps its text verbatim."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline, backtick

from pai_kb.loaders import obsidian
from pai_kb.loaders.frontmatter import Frontmatter, split_frontmatter, string_list, tag_list, text_properties
from pai_kb.models import Block, Document

_KINDS = {
    "heading_open": "heading", "paragraph_open": "paragraph", "fence": "code", "code_block": "code",
    "table_open": "table", "bullet_list_open": "list", "ordered_list_open": "list",
    "blockquote_open": "quote", "hr": "hr", "html_block": "html",
}
_PROSE = {"paragraph", "list", "quote", "table"}


def _parser() -> MarkdownIt:
    # Only block structure is needed (inline text is taken from the source lines), and inline parsing
    # was over half of the loader's time on a 6,500-note vault.
    return MarkdownIt("commonmark", {"maxNesting": 40}).enable("table").disable(["inline", "text_join"])


_MD = _parser()


def _code_span_parser() -> MarkdownIt:
    """Inline parsing reduced to CommonMark's code-span rule (plus plain text), recording where each
    span starts and ends: all the inline structure Obsidian's syntax needs, at a fraction of full cost."""
    md = MarkdownIt("zero")

    def code_span(state: StateInline, silent: bool) -> bool:
        start, tokens = state.pos, len(state.tokens)
        if not backtick(state, silent):
            return False
        # An opener without a closer is consumed as plain text: only a pushed token is a span.
        if not silent and len(state.tokens) > tokens and state.tokens[-1].type == "code_inline":
            state.env.setdefault("code", []).append((start, state.pos))
        return True

    md.inline.ruler.push("code_span", code_span)
    return md


_SPANS = _code_span_parser()


def code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character ranges of the inline code spans in `text`."""
    if "`" not in text:
        return []
    env: dict[str, Any] = {}
    _SPANS.inline.parse(text, _SPANS, env, [])
    return env.get("code", [])


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


def _outside_code(text: str, rewrite: Callable[[str], str]) -> str:
    return "".join(piece if code else rewrite(piece) for piece, code in segments(text))


def load_markdown(text: str, root: str, path: str, warnings: tuple[str, ...] = ()) -> Document:
    lines = text.split("\n")
    front = split_frontmatter(lines)
    meta: dict[str, Any] = {k: _render_value(v) for k, v in front.data.items()}
    body_lines = [""] * front.line_count + obsidian.strip_comments(lines[front.line_count:], code_spans)
    body = _blocks(body_lines)
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
        blocks=tuple(_clean(b) for b in blocks),
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
    Code blocks and inline code are kept verbatim."""
    lines = text.split("\n")
    code = set()
    for tok in _MD.parse(text):
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


def _blocks(lines: list[str]) -> list[Block]:
    """Top-level blocks with 1-based inclusive line ranges, their text taken from the source lines."""
    tokens = _MD.parse("\n".join(lines))
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
    text = _outside_code(obsidian.strip_block_ids(_outside_code(text, obsidian.render_links)), obsidian.unescape)
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

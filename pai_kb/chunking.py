"""Heading-aware chunking: a pure function from a Document to Chunks that fit the model.

Sections follow headings; a section's blocks are packed greedily up to the token budget. Blocks are
split only when one alone is over budget, and then at the gentlest break available (the table
`_BREAKS` orders them), so code blocks and tables stay whole whenever they fit. Token counts come from
the model's own tokenizer (passed in as `count_tokens`, which counts a whole list at once because the
tokenizer is far faster in batches): a chunk the model would truncate is a bug.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pai_kb.models import Block, Chunk, Document
from pai_kb.urls import url_at

__all__ = ["CHUNKER_VERSION", "chunk_document"]

# Bump when chunk boundaries or texts change: the index fingerprint includes it, forcing a rebuild.
# 2: tiny sections merge into a neighbour. 3: frontmatter properties are text; escaped Obsidian syntax reads as text.
CHUNKER_VERSION = 3
# Prefixes longer than this are cut: a deep heading path must not crowd out the passage itself.
MAX_HEADER_TOKENS = 48

# Where an over-long block may be cut, gentlest first: between lines (code, tables, lists), between
# sentences, between words. A single "word" over budget (a base64 blob) is cut by characters.
_BREAKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("line", re.compile(r"(?<=\n)")),
    ("sentence", re.compile(r"(?<=[.!?。！？])(?=\s)")),
    ("word", re.compile(r"(?<=\s)")),
)

TokenCounter = Callable[[Sequence[str]], list[int]]
# A section with fewer body word-pieces than this (a one-line intro before the first `##`, a lone
# "See also" link) joins a neighbour: alone, its vector is mostly the note's title, so it ranked high
# for any query about the note while saying nothing.
MERGE_BELOW_TOKENS = 30


@dataclass(frozen=True)
class _Piece:
    text: str
    line_start: int
    line_end: int
    tokens: int
    start_s: float | None = None
    end_s: float | None = None


def chunk_document(doc: Document, count_tokens: TokenCounter, max_tokens: int, overlap: int,
                   model_limit: int, merge_below: int = MERGE_BELOW_TOKENS) -> list[Chunk]:
    """`max_tokens` is the body budget; `model_limit` the word-pieces the model reads in all (prefix
    included), so the prefix shrinks the body budget when needed rather than being truncated away."""
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    raw = list(_sections(doc))
    block_tokens = iter(count_tokens([b.text for _, blocks in raw for b in blocks]))
    sections = merge_tiny([(heading, [(b, next(block_tokens)) for b in blocks]) for heading, blocks in raw], merge_below)
    header_tokens = count_tokens([heading for heading, _ in sections])
    for (heading, counted), tokens in zip(sections, header_tokens):
        header = _header(heading, tokens, count_tokens)
        budget = max(16, min(max_tokens, model_limit - min(tokens, MAX_HEADER_TOKENS) - 1))
        for pieces in _pack(_pieces(counted, count_tokens, budget), budget, overlap):
            body = "\n\n".join(p.text for p in pieces)
            key = f"{heading}\0{body}"
            seen[key] = seen.get(key, -1) + 1
            chunks.append(_chunk(doc, len(chunks), heading, header, body, pieces, seen[key]))
    return chunks


def _sections(doc: Document) -> Iterable[tuple[str, list[Block]]]:
    stack: list[tuple[int, str]] = []
    current: list[Block] = []
    for block in doc.blocks:
        if block.kind == "heading":
            if current:
                yield _heading_path(doc.title, stack), current
                current = []
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.text))
        elif block.kind != "hr":
            current.append(block)
    if current:
        yield _heading_path(doc.title, stack), current


Counted = list[tuple[Block, int]]


def merge_tiny(sections: list[tuple[str, Counted]], below: int = MERGE_BELOW_TOKENS) -> list[tuple[str, Counted]]:
    """Join each section under `below` tokens to a neighbour, in reading order so line ranges stay
    contiguous: forward into the next section when that one is nested under it (an intro before its
    subsections), else back into the previous one, else forward. The joined section keeps the heading
    of the section it joined. A note's properties do not count toward the size: a one-line intro
    with properties beside it is still the section this rule is for."""
    out: list[tuple[str, Counted]] = []
    carry: Counted = []  # tiny sections waiting to join the next one
    for i, (heading, blocks) in enumerate(sections):
        blocks = carry + blocks
        carry = []
        tiny = sum(t for b, t in blocks if b.kind != "properties") < below
        following = sections[i + 1][0] if i + 1 < len(sections) else None
        if tiny and following is not None and (following.startswith(heading + " > ") or not out):
            carry = blocks
        elif tiny and out:
            out[-1] = (out[-1][0], out[-1][1] + blocks)
        else:
            out.append((heading, blocks))
    return out


def _heading_path(title: str, stack: list[tuple[int, str]]) -> str:
    parts = [title] + [text for _, text in stack if text]
    # A note's H1 often repeats its title; saying it twice wastes tokens.
    if len(parts) > 1 and parts[1].strip().lower() == title.strip().lower():
        parts.pop(1)
    return " > ".join(parts)


def _header(heading: str, tokens: int, count_tokens: TokenCounter) -> str:
    header = heading
    while tokens > MAX_HEADER_TOKENS and len(header) > 8:
        header = header[: int(len(header) * 0.8)]
        tokens = count_tokens([header])[0]
    return header


def _pieces(blocks: list[tuple[Block, int]], count_tokens: TokenCounter, budget: int) -> list[_Piece]:
    pieces = []
    for block, tokens in blocks:
        piece = _Piece(block.text, block.line_start, block.line_end, tokens, block.start_s, block.end_s)
        pieces.extend(_split(piece, count_tokens, budget, 0))
    return [p for p in pieces if p.text.strip()]


def _split(piece: _Piece, count_tokens: TokenCounter, budget: int, level: int) -> list[_Piece]:
    if piece.tokens <= budget:
        return [piece]
    if level >= len(_BREAKS):
        return _split_chars(piece, count_tokens, budget)
    parts = [p for p in _BREAKS[level][1].split(piece.text) if p]
    if len(parts) < 2:
        return _split(piece, count_tokens, budget, level + 1)
    out: list[_Piece] = []
    line = piece.line_start
    groups = ["".join(g) for g in _group(parts, count_tokens(parts), budget)]
    for text, tokens in zip(groups, count_tokens(groups)):
        lead = len(text) - len(text.lstrip())
        start = min(piece.line_end, line + text[:lead].count("\n"))
        end = min(piece.line_end, line + text.rstrip().count("\n"))
        sub = _Piece(text.strip(), start, end, tokens, piece.start_s, piece.end_s)
        out.extend(_split(sub, count_tokens, budget, level + 1))
        line += text.count("\n")
    return out


def _group(parts: list[str], part_tokens: list[int], budget: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    used = 0
    for part, tokens in zip(parts, part_tokens):
        if groups[-1] and used + tokens > budget:
            groups.append([])
            used = 0
        groups[-1].append(part)
        used += tokens
    return groups


def _split_chars(piece: _Piece, count_tokens: TokenCounter, budget: int) -> list[_Piece]:
    out = []
    text, step, pos = piece.text, max(1, budget), 0
    while pos < len(text):  # an index, not the rest of `text` sliced off each time: linear in a 1 MB "word"
        part = text[pos:pos + step]
        tokens = count_tokens([part])[0]
        while tokens > budget and len(part) > 1:
            part = part[: len(part) // 2]
            tokens = count_tokens([part])[0]
        out.append(_Piece(part, piece.line_start, piece.line_end, tokens, piece.start_s, piece.end_s))
        pos += len(part)
    return out


def _pack(pieces: list[_Piece], budget: int, overlap: int) -> Iterable[list[_Piece]]:
    """Greedy packing; a new chunk starts with the previous chunk's trailing pieces that fit in
    `overlap` tokens, so a passage cut at a boundary still has its lead-in."""
    current: list[_Piece] = []
    used = 0
    fresh = 0  # pieces in `current` that are not overlap
    for piece in pieces:
        if current and used + piece.tokens > budget:
            if fresh:
                yield current
            current = _tail(current, overlap, budget - piece.tokens)
            used = sum(p.tokens for p in current)
            fresh = 0
        current.append(piece)
        used += piece.tokens
        fresh += 1
    if current and fresh:
        yield current


def _tail(pieces: list[_Piece], overlap: int, room: int) -> list[_Piece]:
    tail: list[_Piece] = []
    used = 0
    for piece in reversed(pieces):
        if used + piece.tokens > min(overlap, room):
            break
        tail.insert(0, piece)
        used += piece.tokens
    return tail


def _cues(pieces: list[_Piece]) -> tuple[tuple[float, int, int], ...]:
    """Where each timed piece sits in the chunk's body (pieces joined by a blank line, as `_chunk` does)."""
    cues, at = [], 0
    for piece in pieces:
        if piece.start_s is not None:
            cues.append((piece.start_s, at, at + len(piece.text)))
        at += len(piece.text) + 2
    return tuple(cues)


def _chunk(doc: Document, ordinal: int, heading: str, header: str, body: str, pieces: list[_Piece],
           occurrence: int) -> Chunk:
    digest = hashlib.sha1(f"{doc.key}\0{heading}\0{body}\0{occurrence}".encode()).hexdigest()[:20]
    starts = [p.start_s for p in pieces if p.start_s is not None]
    ends = [p.end_s for p in pieces if p.end_s is not None]
    return Chunk(
        id=digest, doc_key=doc.key, ordinal=ordinal, title=doc.title, heading=heading, text=body,
        embed_text=f"{header}\n{body}", line_start=min(p.line_start for p in pieces),
        line_end=max(p.line_end for p in pieces), tags=doc.tags, aliases=doc.aliases,
        source_type=doc.source_type, url=url_at(doc.url, min(starts) if starts else None),
        start_s=min(starts) if starts else None, end_s=max(ends) if ends else None,
        cues=_cues(pieces) if starts else (),
    )

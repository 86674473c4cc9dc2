"""Value objects passed between pipeline stages. Frozen so a stage cannot change what another produced."""

from __future__ import annotations

import re
from datetime import date as _date
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pai_kb.urls import url_at

__all__ = ["ISO_DATE", "ISO_DATE_PATTERN", "MAX_K", "MODES", "SOURCE_TYPES", "Block", "Chunk", "DocKey", "Document", "Filters",
           "Hit", "HoldOut", "AskRequest", "MAX_ASK_K", "MAX_TEXT_CHARS", "SearchRequest", "checked_date", "required_text", "slices", "timestamp", "valid_text"]

# Search modes: keywords and meaning fused by reciprocal rank fusion, meaning alone, keywords alone.
MODES = ("hybrid", "dense", "keyword")
# The most results one search may ask for (every interface).
MAX_K = 100
# The most passages one answer may be built from: more would not fit `answer.context_tokens` anyway.
MAX_ASK_K = 50
# The longest query or question a client off the process may send (HTTP bodies, MCP arguments).
MAX_TEXT_CHARS = 2000

SOURCE_TYPES = ("note", "webclip", "transcript", "pdf")
# More filters than this is not a person's query; bounding them keeps the SQL they become small.
MAX_FILTERS = 32
# The one date form a person or client gives a filter: YYYY-MM-DD (the MCP schema uses the pattern too).
ISO_DATE = r"\d{4}-\d{2}-\d{2}"
ISO_DATE_PATTERN = rf"^{ISO_DATE}$"
ROOTS = ("vault", "inbox")


def checked_date(text: str, what: str = "since") -> str:
    """`text` when it is a real calendar date written YYYY-MM-DD; raises InvalidRequest saying which
    (`2024-02-30` and `2024-13-45` are not dates, `24-1-5` is not the form)."""
    from pai_kb.errors import InvalidRequest

    named = f"{what} '{text}'".strip()
    if not re.match(ISO_DATE_PATTERN, text):
        raise InvalidRequest(f"{named} is not a date in the form YYYY-MM-DD, e.g. 2024-01-31")
    try:
        _date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{named} is not a date (no such day); give YYYY-MM-DD, e.g. 2024-01-31") from None
    return text


@dataclass(frozen=True)
class DocKey:
    """A file's identity in the index: which root it is under and its POSIX path there. Stored as the
    string `root/path`; this is the one place that string is built and taken apart."""

    root: str
    path: str

    @classmethod
    def parse(cls, key: str) -> "DocKey":
        """A `root/path` string split at its first slash."""
        root, _, path = key.partition("/")
        return cls(root, path)

    def __str__(self) -> str:
        return f"{self.root}/{self.path}"


@dataclass(frozen=True)
class SearchRequest:
    """One search as every interface asks for it (CLI, HTTP, MCP, and the client of a running server),
    built and checked once by `of`."""
    query: str
    k: int = 10
    mode: str = "hybrid"
    per_note: int | None = None
    filters: "Filters" = field(default_factory=lambda: Filters())

    @classmethod
    def of(cls, query: str, k: int = 10, mode: str = "hybrid", per_note: int | None = None,
           types: Sequence[str] = (), tags: Sequence[str] = (), path: str | None = None,
           since: str | None = None) -> "SearchRequest":
        """A checked request. Raises InvalidRequest for a blank query, `k` outside 1..MAX_K, an unknown
        mode, `per_note` below 1, or a bad filter (see `Filters.of`)."""
        from pai_kb.errors import InvalidRequest

        required_text(query, "query")
        if not 1 <= k <= MAX_K:
            raise InvalidRequest(f"k={k} is out of range; ask for 1 to {MAX_K} results")
        if mode not in MODES:
            raise InvalidRequest(f"unknown search mode '{mode}'; use one of {', '.join(MODES)}")
        if per_note is not None and per_note < 1:
            raise InvalidRequest(f"per_note={per_note} must be 1 or more")
        return cls(query, k, mode, per_note, Filters.of(types, tags, path, since))

    def params(self) -> dict[str, Any]:
        """The request as the HTTP API's query parameters (`GET /search`), empty values left out."""
        f = self.filters
        given = {"q": self.query, "k": self.k, "mode": self.mode, "per_note": self.per_note, "type": list(f.types),
                 "tag": list(f.tags), "path": f.path, "since": f.since}
        return {key: value for key, value in given.items() if value not in (None, [])}


@dataclass(frozen=True)
class AskRequest:
    """One question as every interface asks it (CLI, HTTP, MCP), built and checked once by `of`.
    `k` is how many passages are retrieved to answer from; `use_llm` False asks for the extractive
    answer (the best passages) even when a model is configured."""
    question: str
    k: int = 8
    use_llm: bool = True
    filters: "Filters" = field(default_factory=lambda: Filters())

    @classmethod
    def of(cls, question: str, k: int = 8, use_llm: bool = True, types: Sequence[str] = (),
           tags: Sequence[str] = (), path: str | None = None, since: str | None = None) -> "AskRequest":
        """A checked request. Raises InvalidRequest for a blank question, `k` outside 1..MAX_ASK_K or a
        bad filter (see `Filters.of`)."""
        from pai_kb.errors import InvalidRequest

        required_text(question, "question")
        if not 1 <= k <= MAX_ASK_K:
            raise InvalidRequest(f"k={k} is out of range; ask for 1 to {MAX_ASK_K} passages")
        return cls(question, k, use_llm, Filters.of(types, tags, path, since))


@dataclass(frozen=True)
class Filters:
    """Search restrictions, applied identically to keyword and dense retrieval."""
    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    path: str | None = None  # glob on the path relative to its root
    since: str | None = None  # ISO date, inclusive

    @property
    def active(self) -> bool:
        """Whether any restriction is set."""
        return bool(self.types or self.tags or self.path or self.since)

    @classmethod
    def of(cls, types: Sequence[str] = (), tags: Sequence[str] = (), path: str | None = None,
           since: str | None = None) -> "Filters":
        """Filters from what a person or client sent, checked: the one way every interface builds them.
        Raises InvalidRequest for an unknown type, over 32 type and tag filters, a `since` that is not a
        YYYY-MM-DD date, text that is not valid Unicode, an empty tag or an unbalanced `[` in `path`."""
        from pai_kb.errors import InvalidRequest

        unknown = [t for t in types if t not in SOURCE_TYPES]
        if unknown:
            raise InvalidRequest(f"unknown type '{unknown[0]}'; use one of {', '.join(SOURCE_TYPES)}")
        if len(types) + len(tags) > MAX_FILTERS:
            raise InvalidRequest(f"at most {MAX_FILTERS} type and tag filters may be given")
        if since is not None:
            checked_date(since)
        for value in (*tags, path or ""):
            valid_text(value, "a filter")
        if path and not cls.balanced_glob(path):
            raise InvalidRequest(f"path glob '{path}' has a '[' without its ']'; write [[] for a literal [")
        return cls(tuple(dict.fromkeys(types)), tuple(dict.fromkeys(map(cls.tag_name, tags))), path or None,
                   since)

    @staticmethod
    def tag_name(tag: str) -> str:
        """A tag as the index stores it: without `#` in front or `/` at the end (`#project/` is `project`).
        Raises InvalidRequest when nothing is left."""
        name = tag.lstrip("#").rstrip("/")
        if not name:
            from pai_kb.errors import InvalidRequest

            raise InvalidRequest(f"tag filter '{tag}' names no tag; give one like 'project' or 'project/sub'")
        return name

    @staticmethod
    def balanced_glob(pattern: str) -> bool:
        """Whether every `[` of a path glob has its `]`: SQLite's GLOB matches nothing at all otherwise."""
        return re.fullmatch(r"(?:[^\[]|\[\^?\]?[^\]]*\])*", pattern) is not None


def valid_text(value: str, what: str) -> str:
    """Text a client sent, refused when it is not valid Unicode (a lone surrogate from a JSON `\\ud800`),
    which SQLite and the tokenizer cannot take. Raises InvalidRequest naming `what`."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        from pai_kb.errors import InvalidRequest

        raise InvalidRequest(f"{what} is not valid Unicode (a lone surrogate); send UTF-8 text") from None
    return value


# What each kind of request text is called, and what to do when it is blank: one message for every
# interface (CLI, HTTP, MCP, the library).
_BLANK = {"query": "say what to look for", "question": "ask something"}


def required_text(value: str, what: str) -> str:
    """`value` when it holds something besides white space; raises InvalidRequest (`what` is "query"
    or "question") so that every interface refuses a blank request with the same words."""
    if not value or not value.strip():
        from pai_kb.errors import InvalidRequest

        raise InvalidRequest(f"the {what} is empty; {_BLANK[what]}")
    return valid_text(value, f"the {what}")


def slices(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """`items` cut into lists of at most `size`, in order: the one batching loop of the package (SQLite's
    `IN (...)` lists, Chroma's request sizes). Raises ValueError when `size` is under 1."""
    if size < 1:
        raise ValueError(f"slice size {size} must be 1 or more")
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def timestamp(seconds: float) -> str:
    """`HH:MM:SS`, the form citations and transcript notes show a time in."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class Block:
    """One top-level block of a document with the 1-based, inclusive source lines it came from.

    Chunking packs blocks, so line ranges of chunks always point at real text in the file."""

    kind: str  # heading | paragraph | code | table | list | quote | hr | html | cue
    text: str
    line_start: int
    line_end: int
    level: int = 0  # heading level; 0 for everything else
    start_s: float | None = None  # transcript cues only
    end_s: float | None = None


@dataclass(frozen=True)
class Document:
    """One loaded file: where it is, its title and type, its blocks with their source lines, and what the
    frontmatter and links gave (aliases, tags, link targets, URL); `warnings` are what loading dropped."""
    root: str  # the name of the root it came from: "vault" or "inbox"
    path: str  # POSIX path relative to that root
    title: str
    source_type: str  # note | webclip | transcript | pdf
    blocks: tuple[Block, ...]
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The document's `root/path` key."""
        return str(DocKey(self.root, self.path))


@dataclass(frozen=True)
class Chunk:
    """One indexed passage of a document: what is shown (`text`), what is embedded (`embed_text`), its
    1-based inclusive source lines (pages for a PDF) and, for a transcript, its start and end in seconds."""
    id: str
    doc_key: str
    ordinal: int
    title: str
    heading: str  # "Title > Section > Sub"
    text: str  # the passage as shown to people
    embed_text: str  # heading path + passage: what the model sees
    line_start: int
    line_end: int
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    source_type: str = "note"
    url: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    # A transcript's cues in `text`: (start in seconds, first character, end character), so a search can
    # cite the moment in the passage that answers it (`Hit.at_s`). Set by chunking; not read back.
    cues: tuple[tuple[float, int, int], ...] = ()
    # Its note is marked local-only (`private: true`, or a `privacy.local_only` pattern): searchable here,
    # never sent to a model off this machine, an MCP client, a hook's output or a remote HTTP client.
    local_only: bool = False

    @property
    def root(self) -> str:
        """The root the chunk's file is under (`vault` or `inbox`)."""
        return DocKey.parse(self.doc_key).root

    @property
    def path(self) -> str:
        """The chunk's file path relative to its root."""
        return DocKey.parse(self.doc_key).path


@dataclass(frozen=True)
class Hit:
    """A chunk in a result list: its score (RRF, BM25 or cosine by mode), 1-based rank and dense similarity."""
    chunk: Chunk
    score: float
    rank: int
    # Cosine similarity of the query to this chunk when the dense arm saw it: `ask` decides whether to
    # abstain from it, so the question is never encoded or the vectors fetched a second time.
    similarity: float | None = None
    # For a transcript passage found by meaning: the start (seconds) of its cue nearest the query, the
    # moment a citation points at; None elsewhere (the passage's own `start_s` is cited then).
    at_s: float | None = None

    @property
    def cited_s(self) -> float | None:
        """The second a citation of this hit points at: `at_s`, else the passage's start."""
        return self.at_s if self.at_s is not None else self.chunk.start_s

    @property
    def url(self) -> str | None:
        """The material's URL, for a video opening at `at_s` when known (see `urls.url_at`)."""
        return self.chunk.url if self.at_s is None else url_at(self.chunk.url, self.at_s)


@dataclass(frozen=True)
class HoldOut:
    """What a search must do without, so a question derived from the vault cannot find its answer by
    reading the question's own text back (`self_eval`): FTS columns left unsearched, vectors to score
    some chunks by instead (their text embedded without the label), and notes left out of the results."""

    columns: tuple[str, ...] = ()
    vectors: Mapping[str, Sequence[float]] = field(default_factory=dict)
    docs: frozenset[str] = frozenset()

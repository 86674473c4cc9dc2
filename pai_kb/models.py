"""Value objects passed between pipeline stages. Frozen so a stage cannot change what another produced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCE_TYPES = ("note", "webclip", "transcript", "pdf")


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
        return f"{self.root}/{self.path}"


@dataclass(frozen=True)
class Chunk:
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

    @property
    def root(self) -> str:
        return self.doc_key.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.doc_key.split("/", 1)[1]


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    rank: int

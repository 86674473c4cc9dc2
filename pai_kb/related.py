"""Notes related to a note: every chunk of it asks the dense index for its neighbours, and each
other note scores by its best match plus a little for every further chunk that matched, so a note
that is close in several places ranks above one that shares a single sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from pai_kb.dense import Dense
from pai_kb.manifest import Manifest
from pai_kb.models import DocKey
from pai_kb.notes import resolve_note

__all__ = ["RelatedNote", "related"]

_NEIGHBOURS = 30
_EXTRA_MATCH = 0.02


@dataclass(frozen=True)
class RelatedNote:
    """A note related to another: its doc key, title, score (best cosine plus 0.02 per further matching chunk)
    and whether the first note already links to it."""
    doc_key: str
    title: str
    score: float
    linked: bool  # the note already links to it

    @property
    def key(self) -> DocKey:
        """The note's root and path."""
        return DocKey.parse(self.doc_key)

    @property
    def path(self) -> str:
        """The note's path relative to its root."""
        return self.key.path


def linked_keys(links: Sequence[str], documents: Mapping[str, tuple[str, list[str]]]) -> set[str]:
    """Resolve wikilink targets the way Obsidian does: by path, else by file name."""
    by_stem: dict[str, str] = {}
    by_path: dict[str, str] = {}
    for key in documents:
        path = DocKey.parse(key).path.removesuffix(".md").lower()
        by_path[path] = key
        by_stem.setdefault(PurePosixPath(path).name, key)
    out = set()
    for link in links:
        target = link.removesuffix(".md").lower()
        key = by_path.get(target) or by_stem.get(PurePosixPath(target).name)
        if key:
            out.add(key)
    return out


def related(manifest: Manifest, dense: Dense, note: str, k: int = 10, new_only: bool = False) -> list[RelatedNote]:
    """Up to `k` notes most like `note` (a path or title), best first; `new_only` leaves out those it links to.
    Raises NoteNotFound when no single indexed note answers to `note`."""
    documents = manifest.documents()
    key = resolve_note(note, {k: title for k, (title, _) in documents.items()})
    linked = linked_keys(documents[key][1], documents)
    own = manifest.chunk_ids(key)
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    for vector in dense.vectors(own).values():
        hits = dense.query(vector, _NEIGHBOURS + len(own))
        chunks = manifest.get_chunks([i for i, _ in hits])
        seen_here: set[str] = set()
        for chunk_id, score in hits:
            other = chunks.get(chunk_id)
            if other is None or other.doc_key == key or other.doc_key in seen_here:
                continue
            seen_here.add(other.doc_key)
            best[other.doc_key] = max(best.get(other.doc_key, -1.0), score)
            count[other.doc_key] = count.get(other.doc_key, 0) + 1
    scored = [RelatedNote(d, documents[d][0], best[d] + _EXTRA_MATCH * (count[d] - 1), d in linked)
              for d in best if d in documents and not (new_only and d in linked)]
    return sorted(scored, key=lambda r: (-r.score, r.doc_key))[:k]

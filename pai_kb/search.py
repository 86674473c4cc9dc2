"""Retrieval: dense (the manifest's matrix, or a Chroma server), keyword (SQLite FTS5 BM25) and their fusion.

Hybrid ranks by reciprocal rank fusion (k=60, equal weights, as published): it needs no calibration
between cosine similarities and BM25 scores, which live on unrelated scales, and weights tuned on one
benchmark's test queries would only overfit it. Results are hydrated from the manifest, so a vector the
manifest does not know (left by an interrupted run) is never returned. Each hit carries its dense
cosine similarity when the dense arm saw it: `ask` decides from it whether the notes cover a question.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from pai_kb.dense import Dense, nearest_moment
from pai_kb.embeddings import Encoder
from pai_kb.errors import InvalidRequest, VectorServerUnreachable
from pai_kb.manifest import Manifest
from pai_kb.models import MODES, Chunk, Filters, Hit, HoldOut, valid_text

__all__ = ["Retriever", "rrf", "select"]

RRF_K = 60
# Each ranking contributes this many candidates to fusion: deep enough that a passage ranked well by
# one method but poorly by the other still competes.
_CANDIDATES = 50
# A filtered dense search first looks this many times deeper without the filter (see `Retriever._filtered`):
# enough for a filter that allows an eighth of the chunks or more.
_OVERFETCH = 8


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: item -> sum of 1/(k + rank) over the rankings it is in, as (item, score)
    best first, ties broken by item."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def overlaps(a: Chunk, b: Chunk) -> bool:
    """Whether two chunks of the same file share at least one source line."""
    return a.doc_key == b.doc_key and a.line_start <= b.line_end and b.line_start <= a.line_end


def select(ranked: Sequence[tuple[Chunk, float]], k: int, per_note: int | None = None,
           groups: Mapping[str, str] | None = None) -> list[Hit]:
    """Top k, skipping a chunk that overlaps one already taken (overlap windows repeat text), repeats a
    taken passage word for word, or comes from another copy of material already returned (`groups` maps
    a materialised note to its inbox original), and capping chunks per note."""
    taken: list[Chunk] = []
    texts: set[str] = set()
    hits: list[Hit] = []
    per_doc: dict[str, int] = {}
    source_of: dict[str, str] = {}  # group -> the one doc that represents it
    groups = groups or {}
    for chunk, score in ranked:
        text = " ".join(chunk.text.split())
        group = groups.get(chunk.doc_key, chunk.doc_key)
        if text in texts or any(overlaps(chunk, t) for t in taken) or source_of.get(group, chunk.doc_key) != chunk.doc_key:
            continue
        source_of[group] = chunk.doc_key
        texts.add(text)
        if per_note is not None and per_doc.get(chunk.doc_key, 0) >= per_note:
            continue
        taken.append(chunk)
        per_doc[chunk.doc_key] = per_doc.get(chunk.doc_key, 0) + 1
        hits.append(Hit(chunk=chunk, score=score, rank=len(hits) + 1))
        if len(hits) == k:
            break
    return hits


class Retriever:
    """Keyword, dense and hybrid search over one index generation; results hydrated from the manifest."""
    def __init__(self, manifest: Manifest, dense: Dense, embedder: Callable[[], Encoder]) -> None:
        self.manifest = manifest
        self.dense = dense
        self._embedder = embedder
        # Long-lived helper threads: each keeps its own manifest connection across queries, where a
        # pool per query would open (and set up) a new SQLite connection every time.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pai-kb-search")

    def close(self) -> None:
        """Release the helper threads; a search still running finishes, later ones are refused."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def search(self, query: str, k: int = 10, mode: str = "hybrid", per_note: int | None = None,
               filters: Filters = Filters(), hold_out: HoldOut = HoldOut()) -> list[Hit]:
        """The best `k` hits for `query` by `mode`, at most `per_note` per note, each with its dense cosine
        similarity when the dense arm saw it; `hold_out` leaves parts out (see `HoldOut`). Raises InvalidRequest
        for an unknown mode or text that is not valid Unicode."""
        if mode not in MODES:
            raise InvalidRequest(f"unknown search mode '{mode}'; use one of {', '.join(MODES)}")
        valid_text(query, "the query")
        # per_note caps and overlap removal discard candidates, so fetch deeper when they will.
        depth = max(_CANDIDATES, k * 3)
        similarity: dict[str, float] = {}
        vector = None
        if mode == "keyword":
            ranked = self.manifest.keyword_search(query, depth, filters, True, hold_out.columns)
        elif mode == "dense":
            ranked, vector = self._dense(query, depth, filters, hold_out)
            similarity = dict(ranked)
        else:
            # The keyword query runs in SQLite while the model encodes: both release the GIL.
            keyword = self._pool.submit(self.manifest.keyword_search, query, depth, filters, False, hold_out.columns)
            dense, vector = self._dense(query, depth, filters, hold_out)
            similarity = dict(dense)
            ranked = rrf([[i for i, _ in dense], [i for i, _ in keyword.result()]])
        chunks = self.manifest.get_chunks([i for i, _ in ranked])
        groups = self.manifest.copy_groups([c.doc_key for c in chunks.values()])
        kept = [(chunks[i], s) for i, s in ranked if i in chunks and chunks[i].doc_key not in hold_out.docs]
        hits = [replace(h, similarity=similarity.get(h.chunk.id)) for h in select(kept, k, per_note, groups)]
        return self._localise(hits, vector) if vector is not None else hits

    def _localise(self, hits: list[Hit], vector: Sequence[float]) -> list[Hit]:
        """Transcript hits with `at_s`, the cue nearest the query: a passage spans a minute or more, the
        answer a few seconds of it."""
        moments = self.manifest.moments([h.chunk.id for h in hits if h.chunk.start_s is not None])
        return [replace(h, at_s=nearest_moment(vector, moments[h.chunk.id])) if h.chunk.id in moments else h
                for h in hits]

    def _filtered(self, vector: Sequence[float], depth: int, filters: Filters,
                  hold_out: HoldOut) -> list[tuple[str, float]]:
        """The dense arm under `filters`. First the nearest `_OVERFETCH` x `depth` chunks without the filter,
        kept if the filter allows `depth` of them (or they were every chunk there is): the filter then
        allows nothing nearer, so the answer is the one the allowed ids would give, found without listing
        them (a filter allowing most chunks at 100,000 took 217 ms that way, and sent a Chroma server every
        id). Otherwise, a narrow filter: its allowed ids, few, are searched among."""
        near = self.dense.query(vector, depth * _OVERFETCH, None, hold_out.vectors)
        allowed = set(self.manifest.filtered_ids(filters, [i for i, _ in near]))
        kept = [(i, s) for i, s in near if i in allowed]
        if len(kept) >= depth or len(near) < depth * _OVERFETCH:
            return kept[:depth]
        every = self.manifest.filtered_ids(filters)
        return self.dense.query(vector, depth, every, hold_out.vectors) if every else []

    def _dense(self, query: str, depth: int, filters: Filters,
               hold_out: HoldOut) -> tuple[list[tuple[str, float]], Sequence[float] | None]:
        """(id, cosine similarity) best first, and the query's vector (None when no chunk may match)."""
        # In a fresh process, reading the vectors from the manifest overlaps loading the query encoder.
        # numpy is imported first, here: its C extension breaks when two threads import it at once.
        import numpy  # noqa: F401

        loading = self._pool.submit(self.dense.load)
        vector = self._embedder().embed([query])[0]
        try:
            loading.result()
            return (self._filtered(vector, depth, filters, hold_out) if filters.active
                    else self.dense.query(vector, depth, None, hold_out.vectors)), vector
        except VectorServerUnreachable as exc:
            raise VectorServerUnreachable(f"{exc}; nothing was searched. A keyword search (mode keyword) needs no "
                                          "vector server") from exc

"""Dense retrieval: by exact cosine over every vector, held in memory and read from the manifest
(`DenseIndex`, the embedded default), or by the Chroma server of `index.url` (`ServerDense`).

Embedded: each chunk's vector is written in the same SQLite transaction as the chunk itself, so the
query path needs neither chromadb nor any repair: what the keyword arm can see, the dense arm sees too,
in every process, the moment a sync commits. A process keeps the matrix and reloads it when the
manifest's version moves (another process indexed, the watcher applied a batch), so a running server
follows the index. Brute force over 100k × 384 float32 is a few milliseconds of one matrix-vector
product: exact, where an HNSW graph approximates; but every process holds the whole matrix.

On a Chroma server the server's HNSW index answers, and a process holds no vectors: the backend for
collections that outgrow one machine's memory. A filter reaches it as the list of the chunk ids it allows,
when `search.Retriever` has to (a narrow filter; see `Retriever._filtered`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pai_kb.manifest import Manifest

__all__ = ["Dense", "DenseIndex", "ServerDense", "nearest_moment"]


def nearest_moment(vector: Sequence[float], moments: Sequence[tuple[float, Sequence[float]]]) -> float | None:
    """The start (seconds) of the cue whose vector is nearest `vector` by cosine (unit vectors: the dot
    product), the earliest among equals; None when there are no cues."""
    import numpy as np

    if not moments:
        return None
    scores = np.asarray([v for _, v in moments], dtype=np.float32) @ np.asarray(vector, dtype=np.float32)
    return moments[int(np.argmax(scores))][0]


class DenseIndex:
    """Every chunk vector of one manifest as a float32 matrix in memory, reloaded when the manifest changes."""
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._lock = threading.Lock()
        self._state: _State = _State(None, [], {}, None)

    def query(self, vector: Sequence[float], k: int, ids: Sequence[str] | None = None,
              instead: Mapping[str, Sequence[float]] | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first, optionally only among `ids`, scoring the chunks in
        `instead` by the vectors given there. Vectors are unit length, as the model gives them, so the
        dot product is the cosine."""
        import numpy as np

        state = self._current()
        if state.matrix is None or not state.ids:
            return []
        query = np.asarray(vector, dtype=np.float32)
        rows = None if ids is None else np.fromiter((state.row[i] for i in ids if i in state.row), dtype=np.int64)
        if rows is not None and not len(rows):
            return []
        scores = (state.matrix if rows is None else state.matrix[rows]) @ query
        if instead:
            position = state.row if rows is None else {state.ids[int(r)]: n for n, r in enumerate(rows)}
            for chunk_id, replacement in instead.items():
                if chunk_id in position:
                    scores[position[chunk_id]] = float(np.asarray(replacement, dtype=np.float32) @ query)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        picked = best if rows is None else rows[best]
        return [(state.ids[int(r)], float(scores[int(b)])) for r, b in zip(picked, best)]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Chunk id -> its vector (dimension floats) for those of `ids` the index holds."""
        state = self._current()
        return {i: state.matrix[state.row[i]].tolist() for i in ids if i in state.row}

    def load(self) -> None:
        """Read the vectors now (a fresh process does it while the query encoder loads)."""
        self._current()

    def _current(self) -> "_State":
        """The matrix as of the manifest's current version: one small read per query, a reload when
        anything was written since."""
        import numpy as np

        version = self.manifest.version()
        with self._lock:
            if version != self._state.version:
                ids, vectors = self.manifest.all_vectors()
                matrix = np.frombuffer(vectors, dtype=np.float32).reshape(len(ids), -1) if ids else None
                self._state = _State(version, ids, {i: n for n, i in enumerate(ids)}, matrix)
            return self._state


@dataclass(frozen=True)
class _State:
    version: str | None
    ids: list[str]
    row: dict[str, int]
    matrix: Any


class ServerDense:
    """The dense arm on a Chroma server (`index.url`): the server's HNSW index finds the neighbours, so no
    process holds the collection; the few vectors a caller asks for by id (`related`) are read from the
    manifest, which keeps every vector beside its chunk. Same interface as `DenseIndex`."""

    def __init__(self, manifest: Manifest, store: Callable[[], Any]) -> None:
        self.manifest = manifest
        self._store = store

    def query(self, vector: Sequence[float], k: int, ids: Sequence[str] | None = None,
              instead: Mapping[str, Sequence[float]] | None = None) -> list[tuple[str, float]]:
        """As `DenseIndex.query`. The chunks in `instead` are scored here, by the vectors given, and
        merged with the server's answer for the rest. Raises VectorServerUnreachable when the server
        does not answer."""
        import numpy as np

        if ids is not None and not ids:
            return []
        found = self._store().query(vector, k + len(instead or ()), ids)
        if not instead:
            return found[:k]
        allowed = None if ids is None else set(ids)
        query = np.asarray(vector, dtype=np.float32)
        scored = [(i, s) for i, s in found if i not in instead]
        scored += [(i, float(np.asarray(v, dtype=np.float32) @ query)) for i, v in instead.items()
                   if allowed is None or i in allowed]
        return sorted(scored, key=lambda pair: -pair[1])[:k]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Chunk id -> its vector, read from the manifest."""
        return self.manifest.vectors(ids)

    def load(self) -> None:
        """Connect to the server now (there is no matrix to read)."""
        self._store()


# Either dense arm: what `search` and `related` are given.
Dense = DenseIndex | ServerDense

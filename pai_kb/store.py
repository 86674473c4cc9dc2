"""The vector store: Chroma, with vectors always passed in (Chroma must never embed or download).

The store holds ids, vectors and the few fields dense filters need; text and citations live in the
manifest (`pai_kb.manifest`), which is the source of truth. A vector whose id the manifest does not
know is an orphan from an interrupted run and is never shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLLECTION = "chunks"


class VectorStore:
    def __init__(self, path: Path) -> None:
        import chromadb
        from chromadb.config import Settings

        path.mkdir(parents=True, exist_ok=True)
        self._client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self._collection = self._client.get_or_create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"})

    def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]],
               metadatas: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(ids), 1000):
            end = start + 1000
            self._collection.upsert(ids=list(ids[start:end]), embeddings=[list(v) for v in vectors[start:end]],
                                    metadatas=[dict(m) for m in metadatas[start:end]])

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            self._collection.delete(ids=list(ids[start:start + 1000]))

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for start in range(0, len(ids), 1000):
            got = self._collection.get(ids=list(ids[start:start + 1000]), include=["embeddings"])
            found.update({i: list(map(float, v)) for i, v in zip(got["ids"], got["embeddings"])})
        return found

    def query(self, vector: Sequence[float], k: int, ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first, optionally only among `ids`."""
        count = self._collection.count() if ids is None else len(ids)
        if count == 0:
            return []
        got = self._collection.query(query_embeddings=[list(vector)], n_results=min(k, count),
                                     ids=list(ids) if ids is not None else None, include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0])]

    def ids(self) -> set[str]:
        return set(self._collection.get(include=[])["ids"])

    def count(self) -> int:
        return self._collection.count()

    def reset(self) -> None:
        self._client.delete_collection(COLLECTION)
        self._collection = self._client.get_or_create_collection(
            COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"})

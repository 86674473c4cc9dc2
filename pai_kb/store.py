"""Where vectors are stored, besides the manifest that always holds them (its `vectors` table, written with
their chunks).

Embedded (the default, `ManifestVectors`): nowhere else. Every chunk's vector is written into the
manifest in the chunk's own transaction, and dense search reads it there (`dense.DenseIndex`, one
matrix per process); no second copy is written. (Chroma's embedded `PersistentClient` is not
process-safe, and `watch`, `serve`, the CLI and MCP processes open one index at once; SQLite in WAL
mode serves them safely.)

With `index.url` (`VectorStore`): a Chroma server (`chroma run`) holds the vectors too and answers the
dense arm's queries (`dense.ServerDense`), so no process loads the collection; vectors are always passed
in (Chroma must never embed or download), one collection per generation, so several indexes can share
one server; the sync's crash journal keeps it in step with the manifest, and a server that does not
answer is `VectorServerUnreachable`. The manifest's copy serves `related` (a note's own vectors) and
crash repair.

The store holds ids, vectors and the few fields dense filters need; text and citations live in the
manifest (`pai_kb.manifest`), which is the source of truth. A vector whose id the manifest does not
know is an orphan from an interrupted run and is never shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pai_kb.errors import ConfigError, PaiKbError, VectorServerUnreachable
from pai_kb.models import slices

__all__ = ["ManifestVectors", "VectorStore", "collection_name", "drop_collection"]

COLLECTION = "chunks"
# Ids per Chroma request: under the server's own limit (its client's `get_max_batch_size()`).
_CHROMA_BATCH = 1000
# Cosine space and wider beams than Chroma's defaults (ef 100 for build and search). The dense arm asks for 50
# candidates; with a search beam of 100 an HNSW graph of the Obsidian Help vault missed one of the exact top 50
# now and then, which changed a hybrid result. Recall@10 against exact search, 16 neighbours, build beam 200,
# on bench_million's vectors (100 real questions): search beam 200: 0.953 at 20,000 vectors, 0.945 at 100,000,
# 0.86 at 1,000,000; beam 400: 0.979 at 100,000; beam 800: 0.994 at 20,000, 0.987 at 100,000, for about the same
# time per query (6.5 ms at 100,000, most of it the HTTP round trip). The search beam can change on a collection
# that exists (the build beam cannot), so one made with a narrower beam is widened when it is opened.
_SEARCH_EF = 1000
_HNSW = {"hnsw:space": "cosine", "hnsw:construction_ef": 200, "hnsw:search_ef": _SEARCH_EF}


def collection_name(index_dir: Path) -> str:
    """The Chroma collection name for an index folder: `pai_kb_` and 16 hex digits of its resolved path's SHA-1."""
    return "pai_kb_" + hashlib.sha1(str(index_dir.resolve()).encode()).hexdigest()[:16]


class ManifestVectors:
    """The embedded backend: the manifest is the store. `upsert` and `delete` have nothing to do (the
    manifest writes and drops a chunk's vector with the chunk itself); `ids` are the manifest's."""

    def __init__(self, manifest: Any) -> None:
        self._manifest = manifest

    def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]],
               metadatas: Sequence[Mapping[str, Any]]) -> None:
        """Nothing to store twice: the vectors reach the manifest with their chunks."""

    def delete(self, ids: Sequence[str]) -> None:
        """Nothing to delete twice: a chunk's vector is deleted with the chunk, in its transaction."""

    def ids(self) -> set[str]:
        """Every chunk id the manifest holds."""
        return self._manifest.all_chunk_ids()


def _server(url: str) -> Any:
    """A client of the Chroma server at `url`, checked by a heartbeat. Raises ConfigError when `url` is
    not http(s) or the server cannot be reached."""
    import chromadb
    from chromadb.config import Settings

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"index.url '{url}' is not an http(s) URL like http://127.0.0.1:8000")
    with answering(url):
        client = chromadb.HttpClient(host=parts.hostname, port=parts.port or 8000, ssl=parts.scheme == "https",
                                     settings=Settings(anonymized_telemetry=False))
        client.heartbeat()
    return client


@contextmanager
def answering(url: str | None) -> Iterator[None]:
    """Around a call to the Chroma server at `url`: a failure to answer becomes VectorServerUnreachable,
    naming the server and what to do. Embedded (`url` None), errors pass through unchanged."""
    try:
        yield
    except PaiKbError:
        raise
    except Exception as exc:  # chromadb and httpx raise bare Exceptions for connection failures
        if url is None:
            raise
        raise VectorServerUnreachable(f"cannot reach the Chroma server at {url}: start it (chroma run --path DIR "
                                      "--port N) or fix index.url / PAI_KB_CHROMA_URL") from exc


def drop_collection(url: str, name: str) -> None:
    """Delete collection `name` from the Chroma server at `url`; one already gone is no error. Raises
    ConfigError when the server cannot be reached."""
    from chromadb.errors import NotFoundError

    client = _server(url)
    try:
        client.delete_collection(name)
    except (NotFoundError, ValueError):  # older servers answer a missing collection with ValueError
        pass


class VectorStore:
    """Vectors in a Chroma collection (cosine space), on a server with `url` or embedded in `path`; vectors
    are always given, Chroma never embeds. Raises ConfigError when `url` is not http(s) or the server
    cannot be reached."""
    def __init__(self, path: Path, url: str | None = None, collection: str = COLLECTION) -> None:
        import chromadb
        from chromadb.config import Settings

        if url:
            self._client = _server(url)
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self._name, self._url = collection, url
        with answering(url):
            self._collection = self._client.get_or_create_collection(collection, embedding_function=None,
                                                                     metadata=_HNSW)
            hnsw = (self._collection.configuration or {}).get("hnsw") or {}
            if hnsw.get("ef_search", _SEARCH_EF) < _SEARCH_EF:  # made by an earlier version
                self._collection.modify(configuration={"hnsw": {"ef_search": _SEARCH_EF}})

    def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]],
               metadatas: Sequence[Mapping[str, Any]]) -> None:
        """Write `ids` with their vectors and metadata (same order and length), 1,000 at a time."""
        rows = list(zip(ids, vectors, metadatas))
        for part in slices(rows, _CHROMA_BATCH):
            with answering(self._url):
                self._collection.upsert(ids=[i for i, _, _ in part], embeddings=[list(v) for _, v, _ in part],
                                        metadatas=[dict(m) for _, _, m in part])

    def delete(self, ids: Sequence[str]) -> None:
        """Remove `ids` (unknown ones are ignored), 1,000 at a time."""
        for part in slices(ids, _CHROMA_BATCH):
            with answering(self._url):
                self._collection.delete(ids=part)

    def query(self, vector: Sequence[float], k: int, ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) of the `k` nearest vectors by the server's HNSW index, best first,
        optionally only among `ids`. Raises VectorServerUnreachable when the server does not answer."""
        if ids is not None and not ids:
            return []
        # No count() first: the server answers fewer than `k` when it holds fewer, and counting cost more
        # than the query itself (11 ms against 6.5 ms at 100,000 vectors, and it grows with the collection).
        with answering(self._url):
            got = self._collection.query(query_embeddings=[list(vector)],
                                         n_results=k if ids is None else min(k, len(ids)),
                                         ids=list(ids) if ids is not None else None, include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0])]

    def ids(self) -> set[str]:
        """Every id in the collection (the crash repair's full comparison)."""
        with answering(self._url):
            return set(self._collection.get(include=[])["ids"])

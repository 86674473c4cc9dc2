"""The facade: the one place that wires config to manifest, store, embedder, syncer and retriever.

Heavy parts (Chroma, torch) are built on first use, so commands that need neither — a no-op sync,
`status`, a keyword search — start in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pai_kb.answer import ABSTAIN_TEXT, Answer, check_citations, extractive, messages, pack
from pai_kb.chunking import CHUNKER_VERSION
from pai_kb.config import Config
from pai_kb.embeddings import Embedder, Encoder, SentenceTransformerEmbedder, export_onnx
from pai_kb.errors import ConfigError, IndexMismatchError, SourceError
from pai_kb.llm import ChatModel, LLMSettings
from pai_kb.loaders import load_bytes, read_sidecar
from pai_kb.locking import writer_lock
from pai_kb.manifest import SCHEMA_VERSION, Filters, Manifest
from pai_kb.models import Hit
from pai_kb.query_encoder import QueryEncoder
from pai_kb.related import RelatedNote, related
from pai_kb.search import MODES, Retriever
from pai_kb.sources import SourceFile, discover
from pai_kb.store import VectorStore, collection_name
from pai_kb.sync import Progress, StatDiff, Syncer, SyncReport, diff_stats, make_plan
from pai_kb.writeback import Written, clip_note, safe_name, save_answer, write_versioned


log = logging.getLogger("pai_kb")


@dataclass(frozen=True)
class Status:
    index_dir: Path
    files: int
    chunks: int
    model: str | None
    fingerprint_ok: bool
    size_bytes: int
    last_sync: float | None
    pending: StatDiff
    errors: dict[str, str]


class _RecentQueries:
    """Remembers the last few query vectors: `ask` needs the question's vector for retrieval and again
    for the abstain check, and encoding it twice was half of ask's own CPU time before the model call."""

    def __init__(self, encoder: Encoder, size: int = 8) -> None:
        self._encoder = encoder
        self._size = size
        self._vectors: dict[str, list[float]] = {}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        for text, vector in zip(missing, self._encoder.embed(missing) if missing else []):
            self._vectors[text] = vector
            while len(self._vectors) > self._size:
                self._vectors.pop(next(iter(self._vectors)))
        return [self._vectors[t] for t in texts]


class KnowledgeBase:
    def __init__(self, config: Config, embedder: Embedder | None = None) -> None:
        self.config = config
        self._given_embedder = embedder

    @cached_property
    def embedder(self) -> Embedder:
        return self._given_embedder or SentenceTransformerEmbedder(self.config.model, self.config.embed_batch_size)

    @cached_property
    def query_embedder(self) -> Encoder:
        """The ONNX encoder when `index` has exported one for this model, else the model itself."""
        onnx = self._onnx_path
        if onnx is not None and onnx.is_file():
            return QueryEncoder(onnx, self.embedder.path / "tokenizer.json", self.embedder.max_tokens + 2)
        return self.embedder

    @cached_property
    def _queries(self) -> "_RecentQueries":
        return _RecentQueries(self.query_embedder)

    @property
    def _onnx_path(self) -> Path | None:
        if not isinstance(self.embedder, SentenceTransformerEmbedder):
            return None
        model = hashlib.sha1(self.embedder.model_id.encode()).hexdigest()[:12]
        return self.config.index_dir / "onnx" / f"query-encoder-{model}.onnx"

    def _export_query_encoder(self) -> None:
        """Once per index and model; `index` pays the torch import, so searches never have to."""
        onnx = self._onnx_path
        if onnx is None or onnx.is_file():
            return
        try:
            export_onnx(self.embedder, onnx)
        except Exception as exc:  # an optional speed-up: searches fall back to the model itself
            log.warning("could not export the query encoder to ONNX (%s); searches will load the model", exc)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.config.index_dir / "manifest.sqlite3")

    @cached_property
    def store(self) -> VectorStore:
        c = self.config
        if c.chroma_url:
            return VectorStore(c.index_dir / "chroma", c.chroma_url, collection_name(c.index_dir))
        return VectorStore(c.index_dir / "chroma")

    @property
    def roots(self) -> dict[str, Path]:
        return {"vault": self.config.vault, "inbox": self.config.inbox}

    @property
    def exclude(self) -> tuple[str, ...]:
        """The person's globs, plus saved answers (see Config.answers_folder)."""
        return (*self.config.exclude, f"{self.config.answers_folder.strip('/')}/*")

    @property
    def fingerprint(self) -> str:
        e, c = self.embedder, self.config
        return (f"{e.model_id}|dim={e.dim}|chunker={CHUNKER_VERSION}|tokens={c.chunk_tokens}|"
                f"overlap={c.chunk_overlap}|schema={SCHEMA_VERSION}")

    def close(self) -> None:
        if "manifest" in self.__dict__:
            self.manifest.close()

    # -- writing --------------------------------------------------------------------------------
    def index(self, rebuild: bool = False, progress: Progress | None = None) -> SyncReport:
        self.check_vault()
        with writer_lock(self.config.index_dir):
            report = self.sync(rebuild, progress)
            self._export_query_encoder()
            return report

    def sync(self, rebuild: bool = False, progress: Progress | None = None,
             stop: Callable[[], bool] | None = None, batch_chunks: int | None = None) -> SyncReport:
        """One plan-then-apply pass. The caller holds `writer_lock` (the watcher holds it for its whole
        life). `stop` is asked between batches: a stopped pass leaves a consistent index that the next
        pass completes."""
        started = time.perf_counter()
        report = SyncReport()
        if rebuild:
            self.manifest.reset()
            self.store.reset()
        self._check_fingerprint(record=True)
        syncer = Syncer(self.config, self.manifest, lambda: self.store, self.embedder, stop, batch_chunks)
        if self.manifest.journal_size():
            report.repaired += syncer.repair()
        if self.manifest.get_meta("dirty"):
            report.repaired += self._verify_store()
        disk = discover(self.roots, self.exclude)
        indexed = self.manifest.file_states()
        diff = diff_stats(disk, indexed)
        data, hashes = syncer.read(disk, diff.new + diff.changed, report)
        plan = make_plan(diff, hashes, indexed)
        report.unchanged = plan.unchanged + len(plan.touch)
        if not plan.empty:
            self._set_meta("dirty", "1")
            syncer.apply(plan, disk, data, hashes, report, progress)
        self._set_meta("last_sync", str(time.time()))
        if self.manifest.get_meta("dirty"):
            self._clear_meta("dirty")
        report.chunks_total = self.manifest.counts()[1]
        report.seconds = time.perf_counter() - started
        return report

    def _verify_store(self) -> int:
        """After a run that did not finish, compare every id: drop stray vectors and forget files whose
        vectors are missing, so the plan re-indexes them. Costs one scan; only runs after a crash."""
        stored = self.store.ids()
        known = self.manifest.all_chunk_ids()
        stray = sorted(stored - known)
        if stray:
            self.store.delete(stray)
        missing = known - stored
        if missing:
            keys = {c.doc_key for c in self.manifest.get_chunks(sorted(missing)).values()}
            with self.manifest.transaction() as db:
                for key in keys:
                    self.manifest.add_orphans(db, self.manifest.chunk_ids(key))
                    self.manifest.delete_document(db, key)
        return len(stray) + len(missing)

    def check_vault(self) -> None:
        if not self.config.vault.is_dir():
            raise ConfigError(f"vault {self.config.vault} does not exist or is not a folder: "
                              "pass --vault, set PAI_KB_VAULT, or set vault in pai-kb.toml")

    def _check_fingerprint(self, record: bool = False) -> None:
        """Vectors from two models (or two chunkers) must never be mixed in one index."""
        stored = self.manifest.get_meta("fingerprint")
        if stored is None and record:
            self._set_meta("fingerprint", self.fingerprint)
            self._set_meta("model", self.embedder.model_id)
        elif stored is not None and stored != self.fingerprint:
            raise IndexMismatchError(
                f"index {self.config.index_dir} was built with {stored}, but the settings now give "
                f"{self.fingerprint}; run `pai-kb index --rebuild` to rebuild it")

    def _set_meta(self, key: str, value: str) -> None:
        with self.manifest.transaction():
            self.manifest.set_meta(key, value)

    def _clear_meta(self, key: str) -> None:
        with self.manifest.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- reading --------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, mode: str = "hybrid", per_note: int | None = None,
               filters: Filters = Filters()) -> list[Hit]:
        if mode not in MODES:
            raise ConfigError(f"unknown search mode '{mode}'; use one of {', '.join(MODES)}")
        self._check_fingerprint()
        retriever = Retriever(self.manifest, lambda: self.store, lambda: self._queries)
        return retriever.search(query, k, mode, per_note, filters)

    def ask(self, question: str, k: int = 8, filters: Filters = Filters(), use_llm: bool = True,
            on_token: Callable[[str], None] | None = None) -> Answer:
        """Retrieve, abstain when nothing is relevant enough, else answer from the sources (with the
        model when one is configured, extractively otherwise) and check the citations."""
        hits = self.search(question, k=k, mode="hybrid", filters=filters)
        best = self._best_similarity(question, hits)
        sources = pack(hits, self.config.answer_context_tokens, self.embedder.count_tokens)
        if best is None or best < self.config.answer_min_similarity:
            return Answer(question, ABSTAIN_TEXT, sources[:3], abstained=True, best_similarity=best)
        if not use_llm or not self.config.llm_base_url:
            result = extractive(question, sources)
            result.best_similarity = best
            return result
        c = self.config
        settings = LLMSettings(c.llm_base_url, c.llm_model, c.llm_api_key_env, c.llm_timeout, c.llm_temperature)
        parts = []
        for token in ChatModel(settings).stream(messages(question, sources)):
            parts.append(token)
            if on_token:
                on_token(token)
        text, cited, invalid = check_citations("".join(parts), len(sources))
        return Answer(question, text, sources, cited, invalid, model=c.llm_model, best_similarity=best)

    def _best_similarity(self, question: str, hits: list[Hit]) -> float | None:
        if not hits:
            return None
        query = self._queries.embed([question])[0]
        vectors = self.store.vectors([h.chunk.id for h in hits])
        return max((sum(a * b for a, b in zip(query, v)) for v in vectors.values()), default=None)

    def materialize(self) -> list[Written]:
        """Write every indexed inbox clip and transcript as a note in its designated vault folder."""
        self.check_vault()
        out = []
        c = self.config
        for key, content_hash in self.manifest.inbox_items():
            path = key.split("/", 1)[1]
            try:
                doc = load_bytes((c.inbox / path).read_bytes(), "inbox", path, read_sidecar(c.inbox / path))
            except (OSError, SourceError) as exc:
                log.warning("%s: not materialised (%s)", key, exc)
                continue
            folder = c.clippings_folder if doc.source_type == "webclip" else c.transcripts_folder
            text = clip_note(doc, key, content_hash)
            written, new_hash = write_versioned(c.vault / folder, c.vault, safe_name(doc.title),
                                                text, self.manifest.materialized(key), key)
            self.manifest.set_materialized(key, written.path, new_hash)
            out.append(written)
        return out

    def save_answer(self, answer: Answer) -> Path:
        return save_answer(answer, self.config.vault, self.config.answers_folder)

    def related(self, note: str, k: int = 10, new_only: bool = False) -> list[RelatedNote]:
        self._check_fingerprint()
        return related(self.manifest, self.store, note, k, new_only)

    def status(self) -> Status:
        files, chunks = self.manifest.counts()
        disk: dict[str, SourceFile] = discover(self.roots, self.exclude)
        last = self.manifest.get_meta("last_sync")
        stored = self.manifest.get_meta("fingerprint")
        return Status(
            index_dir=self.config.index_dir, files=files, chunks=chunks, model=self.manifest.get_meta("model"),
            fingerprint_ok=stored is None or stored == self.fingerprint,
            size_bytes=sum(p.stat().st_size for p in self.config.index_dir.rglob("*") if p.is_file()),
            last_sync=float(last) if last else None, pending=diff_stats(disk, self.manifest.file_states()),
            errors=self.manifest.file_errors())


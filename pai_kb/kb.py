"""The facade: the one place that wires config to manifest, store, embedder, syncer, retriever and
answerer. It holds no protocol of its own: crash safety lives whole in `sync`, the answer flow in
`answer`, note naming and confinement in `notes`.

Heavy parts (Chroma, torch) are built on first use, so commands that need neither — a no-op sync,
`status`, a keyword search — start in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from pai_kb.answer import Answer, Answerer, AnswerSettings
from pai_kb.chunking import CHUNKER_VERSION
from pai_kb import layout
from pai_kb.config import Config
from pai_kb.dense import DenseIndex
from pai_kb.embeddings import Embedder, Encoder, load_model, query_encoder
from pai_kb.errors import ConfigError, NoteNotFound, SourceError, VaultMismatch
from pai_kb.llm import ChatModel, LLMSettings
from pai_kb.loaders import load_bytes, read_sidecar
from pai_kb.locking import writer_lock
from pai_kb.manifest import SCHEMA_VERSION, Manifest
from pai_kb.models import DocKey, Filters, Hit, HoldOut, required_text
from pai_kb.notes import (NoteSpec, NoteText, check_relative, confined, fragment_lines, read_lines, resolve_note,
                          spec_forms)
from pai_kb import self_eval
from pai_kb.related import RelatedNote, related
from pai_kb.self_eval import SelfEvalReport
from pai_kb.search import Retriever
from pai_kb.sources import literal_pattern, scan
from pai_kb.store import ManifestVectors, VectorStore, collection_name
from pai_kb.sync import Progress, StatDiff, Syncer, SyncReport, confirm, diff_stats
from pai_kb.writeback import Written, clip_note, designated, safe_name, save_answer, write_versioned

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
    exclude: dict[str, int] = field(default_factory=dict)  # pattern -> files it excludes
    verified: bool = False  # every indexed file was read and compared, not just stat-checked
    unseen: tuple[str, ...] = ()  # changed although their stat did not show it: the next sync reads them


class KnowledgeBase:
    def __init__(self, config: Config, embedder: Embedder | None = None,
                 query_encoder: Encoder | None = None, generation: Path | None = None) -> None:
        self.config = config
        self._given_embedder = embedder
        self._given_query_encoder = query_encoder
        self._given_generation = generation

    @cached_property
    def generation(self) -> Path:
        """The folder of the index's current generation (see `layout`)."""
        return self._given_generation or layout.current(self.config.index_dir)

    def _follow(self) -> None:
        """A long-lived reader (the server) moves to a generation another process switched to. The old
        one's connections are dropped, not closed: a request still using them finishes."""
        if self._given_generation is None and layout.current(self.config.index_dir) != self.generation:
            for name in ("generation", "manifest", "store", "dense", "retriever", "query_embedder"):
                vars(self).pop(name, None)

    @cached_property
    def embedder(self) -> Embedder:
        c = self.config
        return self._given_embedder or load_model(c.model, c.index_dir / "onnx", c.embed_batch_size)

    @cached_property
    def query_embedder(self) -> Encoder:
        """The model the current generation was built with. After the settings name another model,
        searches keep answering from the current generation, with its own model, until `index` or
        `watch` has built the new one beside it."""
        if self._given_query_encoder is not None:
            return self._given_query_encoder
        built = self.manifest.get_meta("model")
        if built is None or built == self.embedder.model_id:
            return query_encoder(self.embedder)
        return query_encoder(load_model(built, self.config.index_dir / "onnx", self.config.embed_batch_size))

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.generation / "manifest.sqlite3")

    @cached_property
    def store(self) -> VectorStore | ManifestVectors:
        """The Chroma server's collection with `index.url`; else the manifest itself (see `store`)."""
        c = self.config
        if c.chroma_url:
            return VectorStore(self.generation / "chroma", c.chroma_url, collection_name(self.generation))
        return ManifestVectors(self.manifest)

    @property
    def store_is_open(self) -> bool:
        """Whether anything so far needed the vector store (a no-op sync must not)."""
        return "store" in vars(self)

    @cached_property
    def chat_model(self) -> ChatModel | None:
        c = self.config
        if not c.llm_base_url:
            return None
        return ChatModel(LLMSettings(c.llm_base_url, c.llm_model, c.llm_api_key_env, c.llm_timeout, c.llm_temperature))

    @cached_property
    def dense(self) -> DenseIndex:
        return DenseIndex(self.manifest)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.manifest, self.dense, lambda: self.query_embedder)

    @property
    def roots(self) -> dict[str, Path]:
        roots = {"vault": self.config.vault}
        inbox = self.config.inbox or self._recorded_inbox
        if inbox is not None:
            roots["inbox"] = inbox
        return roots

    @cached_property
    def _recorded_inbox(self) -> Path | None:
        """With no inbox given, the one this vault's index was built with: given once, remembered, so
        `pai-kb --vault ~/Notes search ...` needs no --inbox after an `index` that had one."""
        if not (self.generation / "manifest.sqlite3").is_file():
            return None
        recorded = self.manifest.get_meta("roots")
        inbox = json.loads(recorded).get("inbox") if recorded else None
        return Path(inbox) if inbox else None

    @property
    def exclude(self) -> tuple[str, ...]:
        """The person's .gitignore-style patterns, plus the saved answers folder (see
        Config.answers_folder), which is never indexed."""
        return (*self.config.exclude, literal_pattern(self.config.answers_folder))

    @property
    def fingerprint(self) -> str:
        e, c = self.embedder, self.config
        store = "chroma-server" if c.chroma_url else "manifest"
        return (f"{e.model_id}|dim={e.dim}|chunker={CHUNKER_VERSION}|tokens={c.chunk_tokens}|"
                f"overlap={c.chunk_overlap}|schema={SCHEMA_VERSION}|store={store}")

    def close(self) -> None:
        """Close the manifest's connections and stop the search threads (idempotent)."""
        if "retriever" in vars(self):
            self.retriever.close()
        if "manifest" in vars(self):
            self.manifest.close()

    # -- writing --------------------------------------------------------------------------------
    def index(self, rebuild: bool = False, progress: Progress | None = None, allow_removal: bool = False) -> SyncReport:
        """Bring the index up to date. `rebuild` builds a new generation beside the current one and
        switches to it when complete, so searches keep answering meanwhile."""
        self.check_vault()
        try:
            with writer_lock(self.config.index_dir):
                if rebuild:
                    return self._build_beside(progress)
                report = self.sync(progress=progress, allow_removal=allow_removal)
                if not (self.config.index_dir / layout.CURRENT).exists():
                    layout.switch(self.config.index_dir, self.generation)
                return report
        except (OSError, sqlite3.Error) as exc:
            failure = layout.write_failure(exc, self.config.index_dir)
            if failure is None:
                raise
            raise failure from exc

    def sync(self, progress: Progress | None = None, stop: Callable[[], bool] | None = None,
             batch_chunks: int | None = None, allow_removal: bool = False) -> SyncReport:
        """One repair-then-sync pass (see `Syncer.run`); the caller holds `writer_lock`. When the
        settings give another model or chunker than the current generation was built with, the pass
        builds (or resumes) the next generation instead, and switches to it once it is complete."""
        layout.create(self.generation)
        self._check_roots(record=True)
        built = self.manifest.get_meta("fingerprint")
        if built is not None and built != self.fingerprint:
            log.info("settings changed (%s -> %s): building a new generation beside the current one",
                     built, self.fingerprint)
            return self._build_beside(progress, stop, batch_chunks, resume=True)
        self._record_fingerprint()
        syncer = Syncer(self.config, self.manifest, lambda: self.store, self.embedder, stop, batch_chunks)
        return syncer.run(self.roots, self.exclude, progress, allow_removal)

    def _build_beside(self, progress: Progress | None, stop: Callable[[], bool] | None = None,
                      batch_chunks: int | None = None, resume: bool = False) -> SyncReport:
        """Build the next generation and switch to it only once complete; a stopped or killed build
        leaves the current one in use. With `resume`, an unfinished generation built for these same
        settings is completed rather than started again (an hour of embedding is not thrown away)."""
        previous = self.generation
        target = (self._unfinished() if resume else None) or layout.following(self.config.index_dir)
        builder = KnowledgeBase(self.config, self.embedder, generation=target)
        try:
            report = builder.sync(progress, stop, batch_chunks, allow_removal=True)
        except (OSError, sqlite3.Error) as exc:
            builder.close()
            if layout.write_failure(exc, self.config.index_dir) is not None and target != self.generation:
                layout.prune(self.config.index_dir, keep={previous})  # a build that cannot finish frees its space
            raise
        finally:
            builder.close()
        if stop is not None and stop():
            return report
        layout.switch(self.config.index_dir, builder.generation)
        layout.prune(self.config.index_dir, keep={builder.generation, previous})
        self._follow()
        return report

    def _unfinished(self) -> Path | None:
        newest = layout.newest(self.config.index_dir)
        if newest is None or newest == self.generation or not (newest / "manifest.sqlite3").is_file():
            return None
        candidate = KnowledgeBase(self.config, self.embedder, generation=newest)
        try:
            return newest if candidate.manifest.get_meta("fingerprint") == self.fingerprint else None
        finally:
            candidate.close()

    def check_vault(self) -> None:
        if not self.config.vault.is_dir():
            raise ConfigError(f"vault {self.config.vault} does not exist or is not a folder: "
                              "pass --vault, set PAI_KB_VAULT, or set vault in pai-kb.toml")

    def _check_roots(self, record: bool = False) -> None:
        """An index answers for the folders it was built from, and only for them. A vault that vanished
        is left to the sync's removal guard (the watcher pauses), so it is not checked here."""
        given = {name: str(path.resolve()) for name, path in self.roots.items()}
        stored = self.manifest.get_meta("roots")
        if stored is None:
            if record:
                self.manifest.set_meta("roots", json.dumps(given, sort_keys=True))
            return
        built = json.loads(stored)
        if built != given:
            def show(roots: dict[str, str]) -> str:
                return ", ".join(f"{k} {v}" for k, v in sorted(roots.items()))
            raise VaultMismatch(f"index {self.config.index_dir} was built for {show(built)}, not {show(given)}: pass "
                                "the same --vault/--inbox, another --index, or `pai-kb index --rebuild` to rebuild "
                                "it for these folders")

    def _record_fingerprint(self) -> None:
        """Vectors from two models (or two chunkers) are never mixed: a generation keeps the settings
        it was built with (`sync` builds another generation when they change)."""
        if self.manifest.get_meta("fingerprint") is None:
            self.manifest.set_meta("fingerprint", self.fingerprint)
            self.manifest.set_meta("model", self.embedder.model_id)

    def _check_index(self) -> None:
        """Before reading: the vault is there, it has an index, and the index is this vault's."""
        self.check_vault()
        self._follow()
        if not (self.generation / "manifest.sqlite3").is_file():
            raise ConfigError(f"no index for vault {self.config.vault} at {self.config.index_dir}: run `pai-kb index` "
                              "first, or pass the --index it was built in")
        self._check_roots()

    # -- reading --------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, mode: str = "hybrid", per_note: int | None = None,
               filters: Filters = Filters()) -> list[Hit]:
        required_text(query, "query")
        self._check_index()
        return self.retriever.search(query, k, mode, per_note, filters)

    def ask(self, question: str, k: int = 8, filters: Filters = Filters(), use_llm: bool = True,
            on_token: Callable[[str], None] | None = None) -> Answer:
        required_text(question, "question")
        self._check_index()
        c = self.config
        answerer = Answerer(self.retriever, AnswerSettings(c.answer_min_similarity, c.answer_context_tokens),
                            self.embedder.count_tokens, self.chat_model)
        return answerer.ask(question, k, filters, use_llm, on_token)

    def note(self, spec: str, root: str | None = None) -> NoteText:
        """A note by path, title or alias, whole or in part, as a person pastes it: `Note`,
        `Folder/Note.md:12-30`, `Note#Heading`, `Note#^block-id`, `[[Note#Heading|shown]]`. A name is
        tried whole before a trailing `:N-M` is read as lines. Raises NoteNotFound (with suggestions)
        or InvalidRequest (an empty name, a path leaving its root, lines past the end)."""
        forms = spec_forms(spec)
        self._check_index()
        for n, form in enumerate(forms):
            try:
                return self._read_form(form, root)
            except NoteNotFound:
                if n == len(forms) - 1:
                    raise
        raise AssertionError("spec_forms returns at least one form")

    def _read_form(self, form: NoteSpec, root: str | None) -> NoteText:
        check_relative(form.name)
        if root is None:
            key = DocKey.parse(resolve_note(form.name, self.manifest.titles(), self.manifest.aliases()))
        else:
            key = DocKey(root, form.name)
        target = confined(self.roots, key.root, key.path, self.exclude)
        start, end = fragment_lines(target.read_text(encoding="utf-8", errors="replace"), form, key.path)
        return read_lines(target, key.root, key.path, start, end)

    def materialize(self, restore: bool = False) -> list[Written]:
        """Write every indexed inbox clip and transcript as a note in its designated vault folder. A
        note the person deleted is recorded and stays deleted unless `restore`; one item that cannot
        be written is reported and the others still are."""
        self._check_index()
        out = []
        c = self.config
        for key, content_hash in self.manifest.inbox_items():
            path = DocKey.parse(key).path
            try:
                source = self.roots["inbox"] / path
                doc = load_bytes(source.read_bytes(), "inbox", path, read_sidecar(source))
                kind = c.clippings_folder if doc.source_type == "webclip" else c.transcripts_folder
                written, new_hash = write_versioned(designated(c.vault, kind), c.vault, safe_name(doc.title),
                                                    clip_note(doc, key, content_hash), self.manifest.materialized(key),
                                                    key, restore)
            except (OSError, KeyError, SourceError, ConfigError) as exc:  # ConfigError: a write refused
                log.warning("%s: not materialised (%s)", key, exc)
                continue
            self.manifest.set_materialized(key, written.path, new_hash)
            out.append(written)
        return out

    def save_answer(self, answer: Answer) -> Path | None:
        """Saved into the answers folder; an abstention is not an answer and is never saved."""
        if answer.abstained:
            return None
        return save_answer(answer, self.config.vault, self.config.answers_folder)

    def related(self, note: str, k: int = 10, new_only: bool = False) -> list[RelatedNote]:
        spec_forms(note)  # refuses an empty name before anything is opened
        self._check_index()
        return related(self.manifest, self.dense, note, k, new_only)

    def recent(self, limit: int) -> list[dict[str, object]]:
        self._check_index()
        return self.manifest.recent(limit)

    def self_evaluate(self, modes: Sequence[str], limit: int = 100) -> SelfEvalReport:
        """Search quality on this vault, from questions the vault labels itself (see `self_eval`)."""
        self._check_index()

        def search(text: str, mode: str, hold_out: HoldOut) -> list[Hit]:
            return self.retriever.search(text, k=10, mode=mode, per_note=1, hold_out=hold_out)

        def read(key: str) -> str | None:
            doc = DocKey.parse(key)
            try:
                return (self.roots[doc.root] / doc.path).read_text(encoding="utf-8") if doc.root == "vault" else None
            except (OSError, UnicodeDecodeError):
                return None

        return self_eval.evaluate(self.manifest, search, self.query_embedder, read, modes, limit,
                                  self.config.answer_min_similarity)

    def status(self, verify: bool = False) -> Status:
        """What the index holds and what on disk it does not reflect yet: one stat walk, plus a read of
        the few files the last sync marked for recheck. With `verify`, every file is read and compared
        (the one way to see an edit that kept size, mtime and ctime, e.g. on FAT); those found are
        marked so the next sync reads them."""
        self.check_vault()
        self._follow()
        self._check_roots()
        files, chunks = self.manifest.counts()
        found = scan(self.roots, self.exclude)
        indexed = self.manifest.file_states()
        pending, unseen = confirm(diff_stats(found.files, indexed), found.files, indexed,
                                  self.config.max_file_bytes, everything=verify)
        unmarked = {k: replace(indexed[k], recheck=True) for k in unseen if not indexed[k].recheck}
        if unmarked:
            with self.manifest.transaction() as db:
                self.manifest.touch(db, unmarked)
        last = self.manifest.get_meta("last_sync")
        stored = self.manifest.get_meta("fingerprint")
        return Status(
            index_dir=self.config.index_dir, files=files, chunks=chunks, model=self.manifest.get_meta("model"),
            fingerprint_ok=stored is None or stored == self.fingerprint,
            size_bytes=sum(p.stat().st_size for p in self.config.index_dir.rglob("*") if p.is_file()),
            last_sync=float(last) if last else None, pending=pending, errors=self.manifest.file_errors(),
            exclude=found.excluded, verified=verify, unseen=unseen)

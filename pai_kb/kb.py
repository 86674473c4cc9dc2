"""The facade: the one place that wires config to manifest, store, embedder, syncer, retriever and
answerer. It holds no protocol of its own: crash safety lives whole in `sync`, the answer flow in
`answer`, note naming and confinement in `notes`.

Heavy parts (Chroma, torch) are built on first use, so commands that need neither — a no-op sync,
`status`, a keyword search — start in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from pai_kb import audio, generations, recordings, self_eval
from pai_kb.answer import Answer, Answerer, AnswerSettings
from pai_kb.changes import StatDiff, confirm, diff_stats
from pai_kb.chunking import CHUNKER_VERSION
from pai_kb.config import Config, user_cache_dir
from pai_kb.dense import Dense
from pai_kb.embeddings import Embedder, Encoder, load_model, query_encoder
from pai_kb.errors import ConfigError, NoteNotFound, SourceError, VaultMismatch
from pai_kb.generations import Generation, Generations, Writer
from pai_kb.llm import ChatModel, LLMSettings
from pai_kb.loaders import load_bytes, read_sidecar
from pai_kb.manifest import SCHEMA_VERSION, Manifest
from pai_kb.models import AskRequest, DocKey, Filters, Hit, HoldOut, SearchRequest, required_text
from pai_kb.notes import (NoteSpec, NoteText, check_relative, confined, fragment_lines, resolve_note, text_lines,
                          spec_forms)
from pai_kb.recordings import RecordingState
from pai_kb.related import RelatedNote, related
from pai_kb.self_eval import SelfEvalReport
from pai_kb.search import Retriever
from pai_kb.sources import excluded, literal_pattern, scan
from pai_kb.store import ManifestVectors, VectorStore
from pai_kb.sync import Progress, Syncer, SyncReport
from pai_kb.writeback import Written, designated, item_note, safe_name, save_answer, write_versioned

__all__ = ["KnowledgeBase", "Status"]

log = logging.getLogger("pai_kb")


@dataclass(frozen=True)
class Status:
    """What `KnowledgeBase.status` found: indexed files and chunks, the model, whether the settings' fingerprint
    matches the index, index size in bytes, last sync (seconds since the epoch), what is out of date,
    files skipped (doc key -> why), and recordings waiting for transcription or skipped (see
    `RecordingState`)."""
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
    local_only: int = 0  # indexed files that never leave this machine (see `privacy`)
    recordings_pending: tuple[RecordingState, ...] = ()  # waiting for transcription, in doc key order
    recordings_skipped: tuple[RecordingState, ...] = ()  # skipped (and listed in `errors` too), with why


class KnowledgeBase:
    """The library's one entry point: searches, answers, notes and syncs for one vault (and inbox) and its
    index, opening heavy parts (Chroma, the model) on first use. Close it with `close`."""
    def __init__(self, config: Config, embedder: Embedder | None = None,
                 query_encoder: Encoder | None = None) -> None:
        self.config = config
        self._given_embedder = embedder
        self._given_query_encoder = query_encoder
        self.generations = Generations(config.index_dir, self._open_generation)

    def _open_generation(self, path: Path) -> Generation:
        return Generation(path, self.config.chroma_url, self._encoder_for)

    @property
    def generation(self) -> Path:
        """The folder of the index's current generation (see `generations`)."""
        return self.generations.current.path

    def _follow(self) -> None:
        """A long-lived reader (the server) moves to a generation another process switched to."""
        self.generations.follow()

    @cached_property
    def embedder(self) -> Embedder:
        """The model the settings name, loaded on first use (or the one given). Raises ConfigError or BadSetting
        when the model cannot be found locally (nothing is downloaded)."""
        c = self.config
        return self._given_embedder or load_model(c.model, self._model_cache, c.embed_batch_size,
                                                  precision=c.embed_precision)

    @property
    def _model_cache(self) -> Path:
        """Where model exports live: once per user, shared by every vault (not inside any index)."""
        return (self.config.cache_dir or user_cache_dir(os.environ)) / "onnx"

    def _encoder_for(self, manifest: Manifest) -> Encoder:
        """The model a generation was built with. After the settings name another model, searches keep
        answering from the current generation, with its own model, until `index` or `watch` has built
        the new one beside it."""
        if self._given_query_encoder is not None:
            return self._given_query_encoder
        built = manifest.get_meta("model")
        if built is None or built == self.embedder.model_id:
            return query_encoder(self.embedder)
        return query_encoder(load_model(built, self._model_cache, self.config.embed_batch_size))

    @property
    def query_embedder(self) -> Encoder:
        """What encodes queries for the current generation: the model that generation was built with."""
        return self.generations.current.query_encoder

    @property
    def manifest(self) -> Manifest:
        """The current generation's manifest (SQLite: files, chunks, keyword index, vectors)."""
        return self.generations.current.manifest

    @property
    def store(self) -> VectorStore | ManifestVectors:
        """The current generation's vector store: a Chroma server's collection, or the manifest's vectors."""
        return self.generations.current.store

    @property
    def store_is_open(self) -> bool:
        """Whether anything so far needed the vector store (a no-op sync must not)."""
        return self.generations.current.store_is_open

    @cached_property
    def chat_model(self) -> ChatModel | None:
        """The configured chat endpoint, or None when `llm.base_url` is not set (answers are then extractive)."""
        c = self.config
        if not c.llm_base_url:
            return None
        return ChatModel(LLMSettings(c.llm_base_url, c.llm_model, c.llm_api_key_env, c.llm_timeout, c.llm_temperature))

    @property
    def dense(self) -> Dense:
        """The current generation's dense arm: exact cosine over its vectors in memory, or its Chroma
        server's collection with `index.url`."""
        return self.generations.current.dense

    @property
    def retriever(self) -> Retriever:
        """The current generation's retriever (keyword, dense, hybrid)."""
        return self.generations.current.retriever

    @property
    def roots(self) -> dict[str, Path]:
        """Root name -> folder: the vault, and the inbox when one is given or the index recorded one."""
        roots = {"vault": self.config.vault}
        inbox = self.config.inbox or self._recorded_inbox
        if inbox is not None:
            roots["inbox"] = inbox
        return roots

    @property
    def _recorded_inbox(self) -> Path | None:
        """With no inbox given, the one this vault's index was built with: given once, remembered, so
        `pai-kb --vault ~/Notes search ...` needs no --inbox after an `index` that had one."""
        if not self.generations.current.exists:
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
        """What vectors in an index depend on (model, dimension, chunker version, chunk size and overlap in
        word-pieces, schema, store), as one string; two that differ never share an index generation."""
        e, c = self.embedder, self.config
        store = "chroma-server" if c.chroma_url else "manifest"
        return (f"{e.model_id}|dim={e.dim}|chunker={CHUNKER_VERSION}|tokens={c.chunk_tokens}|"
                f"overlap={c.chunk_overlap}|schema={SCHEMA_VERSION}|store={store}")

    def warm_up(self) -> None:
        """Load the query encoder and the dense matrix now (a server's first search is then as quick as
        the others); nothing to do before there is an index."""
        if self.generations.current.exists:
            self.query_embedder.embed(["warm up"])
            self.dense.load()

    def close(self) -> None:
        """Close the current generation: its connections and search threads (idempotent)."""
        self.generations.close()

    # -- writing --------------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[Writer]:
        """The writer lock and the one way to sync (`Writer.sync`, `Writer.rebuild`): `index` takes it for
        one run, `watch` for its whole life. Raises IndexLockedError when another process writes,
        IndexWriteError when the index folder cannot be written, ConfigError when the vault is missing."""
        self.check_vault()
        with self.generations.writer(lambda: self.fingerprint, self._sync_one) as writer:
            yield writer

    def index(self, rebuild: bool = False, progress: Progress | None = None, allow_removal: bool = False) -> SyncReport:
        """Bring the index up to date. `rebuild` builds a new generation beside the current one and
        switches to it when complete, so searches keep answering meanwhile. Raises ConfigError (no vault),
        VaultMismatch (index built for other folders), IndexLockedError, IndexWriteError, and MassRemoval
        when the sync would drop most of the index and `allow_removal` is not set."""
        with self.writer() as writer:
            return writer.rebuild(progress) if rebuild else writer.sync(progress, allow_removal=allow_removal)

    def _sync_one(self, gen: Generation, progress: Progress | None, stop: Callable[[], bool] | None,
                  batch_chunks: int | None, allow_removal: bool) -> SyncReport:
        """One repair-then-sync pass of `gen` (see `Syncer.run`), which records the roots and the
        fingerprint it is built for, then marks what is local-only."""
        generations.create(gen.path, self.config.chroma_url)
        self._check_roots(gen.manifest, record=True)
        if gen.manifest.get_meta("fingerprint") is None:  # vectors of two models or chunkers never mix
            gen.manifest.set_meta("fingerprint", self.fingerprint)
            gen.manifest.set_meta("model", self.embedder.model_id)
        syncer = Syncer(self.config, gen.manifest, lambda: gen.store, self.embedder, stop, batch_chunks)
        report = syncer.run(self.roots, self.exclude, progress, allow_removal)
        self._apply_privacy(gen.manifest)
        return report

    def _apply_privacy(self, manifest: Manifest) -> None:
        """Files whose local-only flag no longer matches their frontmatter and `privacy.local_only` (the
        patterns changed) get it set again; a file indexed in this sync already has the right one."""
        patterns = self.config.local_only
        changes = {}
        for key, (private, local) in manifest.privacy_flags().items():
            wanted = private or (bool(patterns) and excluded(DocKey.parse(key).path, patterns))
            if wanted != local:
                changes[key] = wanted
        manifest.set_local_only(changes)

    def is_local_only(self, doc_key: str) -> bool:
        """Whether the indexed file `doc_key` (`root/path`) may never leave this machine (see `privacy`)."""
        return doc_key in self.manifest.local_only_keys()

    def check_vault(self) -> None:
        """Raises ConfigError when the configured vault is not an existing folder."""
        if not self.config.vault.is_dir():
            raise ConfigError(f"vault {self.config.vault} does not exist or is not a folder: "
                              "pass --vault, set PAI_KB_VAULT, or set vault in pai-kb.toml")

    def _check_roots(self, manifest: Manifest, record: bool = False) -> None:
        """An index answers for the folders it was built from, and only for them (VaultMismatch
        otherwise). A vault that vanished is left to the sync's removal guard (the watcher pauses)."""
        given = {name: str(path.resolve()) for name, path in self.roots.items()}
        stored = manifest.get_meta("roots")
        if stored is None:
            if record:
                manifest.set_meta("roots", json.dumps(given, sort_keys=True))
            return
        built = json.loads(stored)
        if built != given:
            def show(roots: dict[str, str]) -> str:
                return ", ".join(f"{k} {v}" for k, v in sorted(roots.items()))
            raise VaultMismatch(f"index {self.config.index_dir} was built for {show(built)}, not {show(given)}: pass "
                                "the same --vault/--inbox, another --index, or `pai-kb index --rebuild` to rebuild "
                                "it for these folders")

    def _check_index(self) -> None:
        """Before reading: the vault is there, it has an index, and the index is this vault's."""
        self.check_vault()
        self._follow()
        if not self.generations.current.exists:
            raise ConfigError(f"no index yet for vault {self.config.vault} at {self.config.index_dir}: run `pai-kb index` "
                              "first, or pass the --index it was built in")
        self._check_roots(self.manifest)

    # -- reading --------------------------------------------------------------------------------
    def search(self, query: str | SearchRequest, k: int = 10, mode: str = "hybrid", per_note: int | None = None,
               filters: Filters = Filters()) -> list[Hit]:
        """The best hits for a SearchRequest (what every interface builds), or for `query` and the other
        arguments (checked into one the same way). Raises InvalidRequest for a blank query, an unknown
        mode or bad text; ConfigError when there is no index; VaultMismatch when the index was built for
        other folders."""
        if not isinstance(query, SearchRequest):
            required_text(query, "query")
            query = SearchRequest(query, k, mode, per_note, filters)
        self._check_index()
        return self.retriever.search(query.query, query.k, query.mode, query.per_note, query.filters)

    def ask(self, request: AskRequest | str, on_token: Callable[[str], None] | None = None, remote: bool = False,
            **options: Any) -> Answer:
        """A grounded answer (see `answer.Answerer.ask`). `request` is an `AskRequest`, or a question
        whose other fields (`k`, `use_llm`, filter parts as in `AskRequest.of`) come as `options`;
        `remote`: it goes to a client off this machine, so local-only notes are held back. Raises
        InvalidRequest for a blank question or a bad option, ConfigError when there is no index, LLMError
        when the model endpoint fails."""
        if not isinstance(request, AskRequest):
            request = AskRequest.of(request, **options)
        self._check_index()
        c = self.config
        answerer = Answerer(self.retriever, AnswerSettings(c.answer_min_similarity, c.answer_context_tokens),
                            self.embedder.count_tokens, self.chat_model)
        return answerer.ask(request, on_token, remote)

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
        if audio.is_recording_name(key.path):  # a recording reads as its transcript, with timestamps
            text = audio.transcript_text(target)
            if text is None:
                raise NoteNotFound(f"{key.root}/{key.path} is not transcribed yet; run `pai-kb index`")
        else:
            text = target.read_text(encoding="utf-8", errors="replace")
        start, end = fragment_lines(text, form, key.path)
        return text_lines(text, target, key.root, key.path, start, end)

    def materialize(self, restore: bool = False) -> list[Written]:
        """Write every indexed inbox clip and transcript, and every transcribed recording (audio or video, in
        the vault or the inbox), as a note in its designated vault folder; returns what was done to each,
        in doc key order. A recording's note goes into the transcripts folder, never beside the recording,
        and plays it from there (see `writeback.recording_note`). A note the person deleted is recorded
        and stays deleted unless `restore`; one item that cannot be written (a recording whose transcript
        is no longer cached, a file gone meanwhile, a write refused) is logged with why and the others
        still are. A local-only item's note is written `private: true`. Raises ConfigError when there is
        no index."""
        self._check_index()
        out = []
        c = self.config
        local = self.manifest.local_only_keys()
        for key, content_hash in self._materializable():
            doc_key = DocKey.parse(key)
            try:
                source = self.roots[doc_key.root] / doc_key.path
                # A recording is hashed from its file to find its transcript, never read whole.
                data = (audio.read_recording(source, key, c.audio_max_bytes) if audio.is_recording_name(doc_key.path)
                        else source.read_bytes())
                if doc_key.root == "vault" and not audio.is_media(data, audio.is_recording_name(doc_key.path)):
                    continue  # a vault transcript (.vtt, ...) is the person's own file, shown as it is
                doc = load_bytes(data, doc_key.root, doc_key.path, read_sidecar(source))
                kind = c.clippings_folder if doc.source_type == "webclip" else c.transcripts_folder
                text = item_note(doc, data, key, content_hash, kind, source, key in local)
                written, new_hash = write_versioned(designated(c.vault, kind), c.vault, safe_name(doc.title), text,
                                                    self.manifest.materialized(key), key, restore)
            except (OSError, KeyError, SourceError, ConfigError) as exc:  # ConfigError: a write refused
                log.warning("%s: not materialised (%s)", key, exc)
                continue
            self.manifest.set_materialized(key, written.path, new_hash)
            out.append(written)
        return out

    def _materializable(self) -> list[tuple[str, str]]:
        """(doc key, content hash) of what `materialize` writes: the inbox's clips and transcripts, and the
        vault's indexed transcripts, of which it keeps the recordings."""
        states, errors = self.manifest.file_states(), self.manifest.file_errors()
        vault = [(key, states[key].content_hash) for key, kind in self.manifest.source_types().items()
                 if kind == "transcript" and key.startswith("vault/") and key not in errors]
        return sorted([*self.manifest.inbox_items(), *vault])

    def save_answer(self, answer: Answer) -> Path | None:
        """Saved into the answers folder; an abstention is not an answer and is never saved (None). Raises
        ConfigError when the answers folder leads outside the vault."""
        if answer.abstained:
            return None
        return save_answer(answer, self.config.vault, self.config.answers_folder)

    def related(self, note: str, k: int = 10, new_only: bool = False) -> list[RelatedNote]:
        """Up to `k` notes most like `note` (a path or title), best first; `new_only` leaves out notes it already
        links to. Raises InvalidRequest for an empty name, NoteNotFound when no single indexed note answers to
        it, ConfigError when there is no index."""
        spec_forms(note)  # refuses an empty name before anything is opened
        self._check_index()
        return related(self.manifest, self.dense, note, k, new_only)

    def recent(self, limit: int) -> list[dict[str, object]]:
        """The `limit` files most recently (re)indexed, newest first: root, path, title, source_type, date,
        indexed_at (seconds since the epoch). Raises ConfigError when there is no index."""
        self._check_index()
        return self.manifest.recent(limit)

    def self_evaluate(self, modes: Sequence[str], limit: int = 100) -> SelfEvalReport:
        """Search quality on this vault, from questions the vault labels itself (see `self_eval`). Raises
        ConfigError when there is no index."""
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
        the few files the last sync marked for recheck, and of the new or changed recordings (to find
        their transcript in the cache and their length). With `verify`, every file is read and compared
        (the one way to see an edit that kept size, mtime and ctime, e.g. on FAT); those found are
        marked so the next sync reads them. Recordings waiting for transcription (not transcribed yet:
        new, a stopped run, a watcher still at it, or the `pai-kb[audio]` extra missing) and recordings
        skipped (corrupt, empty, no audio track, over `audio.max_minutes` or `audio.max_bytes`; a silent
        one is indexed, not skipped) are listed with why. Raises ConfigError when there is no index yet
        (a read never creates one, nor any other file)."""
        self._check_index()
        files, chunks = self.manifest.counts()
        found = scan(self.roots, self.exclude)
        indexed = self.manifest.file_states()
        pending, unseen = confirm(diff_stats(found.files, indexed), found.files, indexed, self.config,
                                  everything=verify)
        unmarked = {k: replace(indexed[k], recheck=True) for k in unseen if not indexed[k].recheck}
        if unmarked:
            with self.manifest.transaction() as db:
                self.manifest.touch(db, unmarked)
        last = self.manifest.get_meta("last_sync")
        stored = self.manifest.get_meta("fingerprint")
        errors = self.manifest.file_errors()
        waiting = recordings.waiting(self.config, found.files, (*pending.new, *pending.changed))
        skipped = recordings.skipped(errors, found.files, {*pending.changed, *pending.deleted})
        return Status(
            index_dir=self.config.index_dir, files=files, chunks=chunks, model=self.manifest.get_meta("model"),
            fingerprint_ok=stored is None or stored == self.fingerprint,
            size_bytes=sum(p.stat().st_size for p in self.config.index_dir.rglob("*") if p.is_file()),
            last_sync=float(last) if last else None, pending=pending, errors=errors,
            exclude=found.excluded, verified=verify, unseen=unseen,
            local_only=len(self.manifest.local_only_keys()), recordings_pending=waiting, recordings_skipped=skipped)

"""The always-on watcher: follows the vault and the inbox and keeps the index exactly in step.

watchdog events are treated as triggers, not as the truth. Editors save in many ways (write in place,
write a temp file and rename it over the note, delete and re-create), sync clients and `git pull`
produce bursts, and the OS may drop events. So events only say *when* to look; each batch runs the
same plan-then-apply sync as `pai-kb index`, whose stat check makes an unchanged vault cost a walk
(0.2 s for 6,500 notes). What the index holds is therefore always what `index` would produce.
Events on paths that can never be indexed (`.obsidian/`, swap and temp files) trigger nothing.

The model is loaded at start, before the first event, so the first change is as quick as the later
ones. When a sync would remove most of the index, or a root vanished (an unmounted drive, a sync client
mid-way), the watcher pauses instead of deleting, retries every few seconds, and resumes by itself
once the folder is back.

Recordings are transcribed on a thread of their own (`audio.Background`): a batch's sync leaves them
pending, and once one is transcribed into the cache the watcher syncs it like any change, so a note
edit never waits behind a long recording.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pai_kb import audio, render
from pai_kb.errors import MassRemoval
from pai_kb.kb import KnowledgeBase
from pai_kb.models import DocKey
from pai_kb.sources import is_candidate
from pai_kb.generations import Writer
from pai_kb.sync import SyncReport, SyncStopped

log = logging.getLogger("pai_kb.watch")
# Small batches keep a stop request (SIGTERM) answered within a second even mid-sync: 16 chunks embed
# in well under a second on two cores.
_WATCH_BATCH_CHUNKS = 16
# While paused (see the module docstring), how often to look whether the folder is back.
_PAUSED_RETRY_S = 2.0
# Log lines name at most this many files; a burst of 1,000 is summarised after them.
_NAMED_FILES = 10


@dataclass(frozen=True)
class WatchSettings:
    """How events become batches (seconds)."""
    debounce_s: float = 0.25  # quiet time that closes a batch of events
    max_delay_s: float = 1.0  # a batch is applied at the latest this long after its first event
    reconcile_s: float = 300.0  # full reconciliation even without events, for events the OS dropped


@dataclass
class _Pending:
    """Event paths waiting to be applied; shared between watchdog's thread and the main loop."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    paths: set[str] = field(default_factory=set)
    first: float | None = None
    last: float = 0.0
    wake: threading.Event = field(default_factory=threading.Event)

    def add(self, path: str) -> None:
        with self.lock:
            now = time.monotonic()
            self.paths.add(path)
            self.first = self.first or now
            self.last = now
        self.wake.set()

    def take_if_due(self, settings: WatchSettings) -> set[str]:
        """The batch of paths once events have gone quiet (or waited long enough), else nothing."""
        with self.lock:
            if self.first is None:
                return set()
            now = time.monotonic()
            if now - self.last < settings.debounce_s and now - self.first < settings.max_delay_s:
                return set()
            paths, self.paths, self.first = self.paths, set(), None
            return paths


class _Handler(FileSystemEventHandler):
    def __init__(self, roots: dict[str, Path], exclude: tuple[str, ...], pending: _Pending) -> None:
        self.roots = {name: str(root) for name, root in roots.items()}
        self.exclude = exclude
        self.pending = pending

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and self._relevant(str(raw), event.is_directory):
                self.pending.add(str(raw))

    def _relevant(self, path: str, is_dir: bool) -> bool:
        for name, root in self.roots.items():
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel.startswith("../") or rel == "..":
                continue
            if rel == ".":
                return is_dir
            if is_dir:
                return not any(part.startswith(".") for part in rel.split("/"))
            return is_candidate(rel, self.exclude, name)
        return False


class Watcher:
    """Keeps one index exactly in step with its roots (see the module doc); `run` until `stop`."""

    def __init__(self, kb: KnowledgeBase, settings: WatchSettings = WatchSettings(),
                 on_batch: Callable[[SyncReport, int], None] | None = None) -> None:
        self.kb = kb
        self.settings = settings
        self.on_batch = on_batch or _log_batch
        self.stop_event = threading.Event()
        self._writer: Writer | None = None  # held while `run` runs: the lock and the one way to sync
        self.pending = _Pending()
        self.paused: str | None = None  # why syncing is paused, while it is
        # The last pass's warnings: one that persists (an exclude pattern that matches nothing) is logged
        # when it appears, not again with every batch; one that goes away and comes back is logged again.
        self.warned: set[str] = set()
        self.warming = False  # loading the model: a stop request may interrupt it (see `interrupt`)
        self.transcriber: audio.Background | None = None  # started when a batch leaves recordings pending

    def stop(self) -> None:
        """Ask `run` to end; a batch in flight stops at its next embedding slice."""
        self.stop_event.set()
        self.pending.wake.set()

    def interrupt(self) -> None:
        """For signal handlers: stop after the current batch (well under a second), or at once while the
        model is still loading, which can take most of a minute on a busy machine and writes nothing."""
        self.stop()
        if self.warming:
            raise KeyboardInterrupt

    def _warm_up(self) -> bool:
        """Load the model now rather than on the first event; False when stopped meanwhile."""
        self.warming = True
        try:
            self.kb.embedder.embed(["pai-kb warms up its model before the first change"])
        except KeyboardInterrupt:
            return False
        finally:
            self.warming = False
        return not self.stop_event.is_set()

    def run(self) -> None:
        """Reconcile, then follow events until `stop()`. Holds the index's writer lock throughout."""
        with self.kb.writer() as writer:
            self._writer = writer
            if not self._warm_up():
                return
            in_sync = self.kb.config.audio_in_sync
            self.kb.config = self.kb.config.replace(audio_in_sync=False)  # recordings: see `_transcribe_later`
            observer = self._observe()
            try:
                self._apply()  # catch up with whatever changed while no watcher ran
                observer = self._loop(observer)
            finally:
                observer.stop()
                observer.join(timeout=1.5)
                self.kb.config = self.kb.config.replace(audio_in_sync=in_sync)
                if self.transcriber is not None:
                    self.transcriber.thread.join(timeout=5)

    def _observe(self) -> Observer:
        observer = Observer()
        handler = _Handler(self.kb.roots, self.kb.exclude, self.pending)
        self._watched = [root for root in self.kb.roots.values() if root.is_dir()]
        for root in self._watched:
            observer.schedule(handler, str(root), recursive=True)
        observer.start()
        return observer

    def _root_vanished(self) -> bool:
        """A watched root that is gone (unmounted, moved away) sends no event of its own: look."""
        return any(not root.is_dir() for root in self._watched)

    def _loop(self, observer: Observer) -> Observer:
        last_full = time.monotonic()
        while not self.stop_event.is_set():
            self.pending.wake.wait(timeout=min(self.settings.debounce_s, 0.5))
            self.pending.wake.clear()
            now = time.monotonic()
            due = self.pending.take_if_due(self.settings) or now - last_full >= self.settings.reconcile_s
            retry = now - last_full >= _PAUSED_RETRY_S and (self.paused or self._root_vanished())
            if due or retry:
                if self.paused:
                    # A root that vanished and came back is a new folder: watch it afresh, before the
                    # sync looks, so nothing written after the sync's walk goes unseen.
                    observer.stop()
                    observer = self._observe()
                self._apply()
                last_full = time.monotonic()
        return observer

    def _apply(self) -> None:
        if self.stop_event.is_set():
            return
        started = time.perf_counter()
        try:
            report = self._writer.sync(stop=self.stop_event.is_set, batch_chunks=_WATCH_BATCH_CHUNKS)
        except SyncStopped:
            return  # stopping: what this pass did not write, the next run does
        except MassRemoval as exc:
            if self.paused != str(exc):
                log.warning("paused, nothing removed: %s", render.inert(str(exc)))
            self.paused = str(exc)
            return
        except Exception:  # the watcher must outlive any one bad batch; the next batch retries
            log.exception("sync failed; will retry on the next change")
            return
        if self.paused:
            log.info("resumed: the folders are back")
            self.paused = None
        for warning in dict.fromkeys(report.warnings):
            if warning not in self.warned:
                log.warning("%s", render.inert(warning))
        self.warned = set(report.warnings)
        self._transcribe_later(report.pending_audio)
        self.on_batch(report, int((time.perf_counter() - started) * 1000))

    def _transcribe_later(self, keys: list[str]) -> None:
        """Hand recordings the sync left pending to the background transcriber (one model thread, so
        embedding note edits keeps a core); each one it finishes comes back as a change to sync."""
        if not keys:
            return
        if self.transcriber is None:
            self.transcriber = audio.Background(self.kb.config, self.stop_event.is_set, self.pending.add)
        self.transcriber.submit((k, str(self.kb.roots[DocKey.parse(k).root] / DocKey.parse(k).path)) for k in keys)


def _log_batch(report: SyncReport, ms: int) -> None:
    changed = report.added + report.updated + report.moved + report.removed
    if changed or report.skipped or report.repaired:
        # File names are data: one holding escape sequences must not reach a terminal raw.
        names = render.inert(", ".join(report.changed[:_NAMED_FILES]))
        more = f" and {len(report.changed) - _NAMED_FILES} more" if len(report.changed) > _NAMED_FILES else ""
        log.info("synced %d added, %d updated, %d moved, %d removed, %d skipped files; %d chunks embedded; %d ms: %s%s",
                 report.added, report.updated, report.moved, report.removed, report.skipped,
                 report.chunks_embedded, ms, names, more)

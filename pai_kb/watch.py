"""The always-on watcher: follows the vault and the inbox and keeps the index exactly in step.

watchdog events are treated as triggers, not as the truth. Editors save in many ways (write in place,
write a temp file and rename it over the note, delete and re-create), sync clients and `git pull`
produce bursts, and the OS may drop events. So events only say *when* to look; each batch runs the
same plan-then-apply sync as `pai-kb index`, whose stat check makes an unchanged vault cost a walk
(0.2 s for 6,500 notes). What the index holds is therefore always what `index` would produce.
Events on paths that can never be indexed (`.obsidian/`, swap and temp files) trigger nothing.
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

from pai_kb.kb import KnowledgeBase
from pai_kb.locking import writer_lock
from pai_kb.sources import is_candidate
from pai_kb.sync import SyncReport

log = logging.getLogger("pai_kb.watch")
# Small batches keep a stop request (SIGTERM) answered within about a second even mid-sync.
_WATCH_BATCH_CHUNKS = 48


@dataclass(frozen=True)
class WatchSettings:
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
    def __init__(self, kb: KnowledgeBase, settings: WatchSettings = WatchSettings(),
                 on_batch: Callable[[SyncReport, int], None] | None = None) -> None:
        self.kb = kb
        self.settings = settings
        self.on_batch = on_batch or _log_batch
        self.stop_event = threading.Event()
        self.pending = _Pending()

    def stop(self) -> None:
        self.stop_event.set()
        self.pending.wake.set()

    def run(self) -> None:
        """Reconcile, then follow events until `stop()`. Holds the index's writer lock throughout."""
        with writer_lock(self.kb.config.index_dir):
            observer = Observer()
            handler = _Handler(self.kb.roots, self.kb.exclude, self.pending)
            for root in self.kb.roots.values():
                if root.is_dir():
                    observer.schedule(handler, str(root), recursive=True)
            observer.start()
            try:
                self._apply()  # catch up with whatever changed while no watcher ran
                self._loop()
            finally:
                observer.stop()
                observer.join(timeout=1.5)

    def _loop(self) -> None:
        last_full = time.monotonic()
        while not self.stop_event.is_set():
            self.pending.wake.wait(timeout=min(self.settings.debounce_s, 0.5))
            self.pending.wake.clear()
            if self.pending.take_if_due(self.settings) or time.monotonic() - last_full >= self.settings.reconcile_s:
                self._apply()
                last_full = time.monotonic()

    def _apply(self) -> None:
        if self.stop_event.is_set():
            return
        started = time.perf_counter()
        try:
            report = self.kb.sync(stop=self.stop_event.is_set, batch_chunks=_WATCH_BATCH_CHUNKS)
        except Exception:  # the watcher must outlive any one bad batch; the next batch retries
            log.exception("sync failed; will retry on the next change")
            return
        for warning in report.warnings:
            log.warning("%s", warning)
        self.on_batch(report, int((time.perf_counter() - started) * 1000))


def _log_batch(report: SyncReport, ms: int) -> None:
    changed = report.added + report.updated + report.moved + report.removed
    if changed or report.skipped or report.repaired:
        log.info("synced %d added, %d updated, %d moved, %d removed, %d skipped files; %d chunks embedded; %d ms",
                 report.added, report.updated, report.moved, report.removed, report.skipped,
                 report.chunks_embedded, ms)

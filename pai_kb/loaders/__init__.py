"""Loaders turn one file into a `Document`; this module only picks the loader by suffix and reads the
file's bytes. Each loader owns its format whole (decoding, metadata, sidecars) and is a function of
bytes, tested with literal inputs. Every failure is a `SourceError` naming the file.

Every loader runs in time linear in its input (tests/test_linear_time.py holds the adversarial inputs),
and `load_bytes` still gives each file a time budget, so a case nobody thought of costs one skipped file,
not a stalled sync. The budget is a POSIX interval timer (SIGALRM) whose handler raises `LoaderTimeout`
in the loading code: Python code and regular-expression matching are interrupted wherever they are, the
work really stops, and there is no per-file cost (no worker process). Signals reach only the main
thread, which is where `index` and `watch` load files; called from another thread, or while another
part of the process owns the alarm timer, `load_bytes` runs without a budget.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path, PurePosixPath

from pai_kb.audio import SUFFIXES as AUDIO_SUFFIXES
from pai_kb.audio import is_media
from pai_kb.errors import FileTooLarge, LoaderTimeout, SourceError
from pai_kb.models import Document

__all__ = ["INBOX_ONLY", "SUFFIXES", "load_bytes", "read_file", "read_sidecar"]

SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".vtt", ".srt", ".txt", ".json", ".pdf"})
# JSON in a vault is plugin data and settings, not material: only the inbox takes JSON transcripts.
INBOX_ONLY = frozenset({".json"})
TIMED = frozenset({".vtt", ".srt", ".txt", ".json"})
# Seconds one file may take to load (decode and parse) before it is skipped. A 10 MB file, the default
# size cap, loads in a few seconds; this is a safety net for inputs that are slow in a way no test knew.
LOAD_BUDGET_S = 30.0


def load_bytes(data: bytes, root: str, path: str, sidecar: dict | None = None,
               budget_s: float | None = None) -> Document:
    """`sidecar` is metadata found beside the file (url, title) for formats that cannot carry it.
    `budget_s` (seconds; None means `LOAD_BUDGET_S`, 0 or less means no budget) bounds the time spent
    loading on the main thread. Raises `SourceError` naming the file, `LoaderTimeout` when the budget
    runs out (the work is abandoned there)."""
    alarm = _Alarm(LOAD_BUDGET_S if budget_s is None else budget_s, f"{root}/{path}")
    try:
        alarm.start()
        doc = _load(data, root, path, sidecar)
    except BaseException as exc:
        alarm.active = False  # first, and no call before it: a late alarm then finds nothing to stop
        alarm.stop()
        if alarm.fired and isinstance(exc, Exception):
            raise alarm.timeout() from None  # whatever a loader made of the interruption
        raise
    alarm.active = False
    alarm.stop()
    if alarm.fired:
        raise alarm.timeout()  # a library swallowed the interruption and finished late
    return doc


def _load(data: bytes, root: str, path: str, sidecar: dict | None) -> Document:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in AUDIO_SUFFIXES or is_media(data, named=False):
        from pai_kb.audio import load_audio  # a transcript cached by the sync; by content, whatever the name

        return load_audio(data, root, path)
    if suffix in (".html", ".htm"):
        from pai_kb.loaders.html import load_html

        return load_html(data, root, path)
    if suffix == ".pdf":
        from pai_kb.loaders.pdf import load_pdf

        return load_pdf(data, root, path)
    if suffix in TIMED:
        from pai_kb.loaders.transcript import load_transcript

        return load_transcript(data, root, path, suffix, sidecar or {})
    from pai_kb.loaders.markdown import load_markdown
    from pai_kb.loaders.text import decode

    text, warnings = decode(data, f"{root}/{path}")
    return load_markdown(text, root, path, warnings)


class _Alarm:
    """The per-file budget (see the module doc). Once it runs out, the handler raises `LoaderTimeout`
    in the loading code, and again every `_REPEAT_S` while loading goes on, because libraries (such as
    trafilatura) catch broad exceptions and would otherwise carry on unbounded."""

    _REPEAT_S = 0.05

    def __init__(self, seconds: float, key: str) -> None:
        self.seconds, self.key = seconds, key
        self.active = self.fired = False
        self.previous: object = signal.SIG_DFL

    def start(self) -> None:
        if self.seconds > 0 and _alarm_free():
            self.active = True
            self.previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self) -> None:
        """Call after setting `active` to False."""
        if signal.getsignal(signal.SIGALRM) == self._expire:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def timeout(self) -> LoaderTimeout:
        return LoaderTimeout(f"{self.key}: still loading after {self.seconds:g} s, the per-file time budget; "
                             "skipped — report the file as a loader bug, or split it")

    def _expire(self, signum: int, frame: object) -> None:
        if not self.active:
            return
        self.fired = True
        signal.setitimer(signal.ITIMER_REAL, self._REPEAT_S)
        raise self.timeout()


def _alarm_free() -> bool:
    """Whether this thread may use the alarm timer: the main thread, and no one else's timer armed."""
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)


def read_sidecar(abspath: Path) -> dict:
    """Metadata stored beside a transcript (see `transcript.read_sidecar`); empty for other files."""
    if abspath.suffix.lower() not in TIMED:
        return {}
    from pai_kb.loaders.transcript import read_sidecar as read

    return read(abspath)


def read_file(abspath: Path, key: str, max_bytes: int) -> bytes:
    """The file's bytes, at most `max_bytes` + 1 (so a file that grew while read shows as too large). Raises
    FileTooLarge when its stat is over `max_bytes`, SourceError when it was deleted or cannot be read."""
    try:
        size = abspath.stat().st_size
        if size > max_bytes:
            raise FileTooLarge(f"{key}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                               "skipped (raise sources.max_file_bytes to index it)")
        with abspath.open("rb") as handle:
            # Sized by the stat, not the limit: read(n) allocates n bytes up front, 10 MB for every note.
            data = handle.read(size + 1)
            if len(data) > size:  # it grew while read: read on, up to the limit
                data += handle.read(max_bytes + 1 - len(data))
            return data
    except FileNotFoundError as exc:
        raise SourceError(f"{key}: deleted while indexing; it will be dropped on the next sync") from exc
    except OSError as exc:
        raise SourceError(f"{key}: cannot be read ({exc.strerror}); check its permissions") from exc

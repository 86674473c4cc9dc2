"""PDFs: text per page from PDFium. Each page is a block whose line range is its page number, so citations
read `file.pdf p. 3`. Encrypted and image-only (scanned) PDFs are refused with a reason.

PDFium runs in its own process (`pdf_engine.py`), so a crash in native code on a hostile file costs that
file, never the run or the watcher. The process serves file after file; one that crashed, was killed by the
per-file budget, or left after idling is replaced by a new one on the next PDF. PDFium is about ten times
faster than pure-Python extraction: a 1 MB file of 4,032 pages takes 0.14 s of CPU against 1.5 s with
pypdf 7.1 (tests/test_linear_time.py)."""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import IO

from pai_kb.errors import SourceError
from pai_kb.models import Block, Document

__all__ = ["load_pdf", "stop_engine"]

ENGINE_IDLE_S = 300.0  # seconds an idle engine process waits for the next PDF before it leaves
# Seconds the engine may take on one file: past it, it is killed and the file skipped. Twice the per-file
# budget (loaders.LOAD_BUDGET_S), which comes first on the main thread; this bounds loads off it too.
ENGINE_DEADLINE_S = 60.0
# PDFium joins a word hyphenated at a line's end and puts \x02 where the hyphen was; without it the word reads
# whole ("hyph-" + "enation": "hyphenation"). Soft hyphens (U+00AD) are invisible; the others are not text.
_MARKERS = str.maketrans("", "", "\x02\u00ad\ufffe\uffff\x00")


def load_pdf(data: bytes, root: str, path: str) -> Document:
    """A PDF as a document with one block per page that has text (lines = page number), title and author
    from its metadata. Raises SourceError when it is encrypted, unreadable, crashes the engine, or has no
    extractable text."""
    key = f"{root}/{path}"
    result = _ENGINE.read(data, key)
    if "refused" in result:
        if result["refused"] == "encrypted":
            raise SourceError(f"{key}: encrypted PDF; not indexed — save an unencrypted copy")
        raise SourceError(f"{key}: unreadable PDF ({result['detail']}); not indexed")
    pages, info = result["pages"], result["metadata"]
    blocks = [Block("page", _clean(text), n, n) for n, text in enumerate(pages, start=1) if text.strip()]
    if not blocks:
        raise SourceError(f"{key}: no extractable text (a scanned PDF?); not indexed — run OCR on it first")
    title = info.get("Title", "").strip() or PurePosixPath(path).stem
    author = info.get("Author", "").strip()
    return Document(root=root, path=path, title=title, source_type="pdf", blocks=tuple(blocks),
                    metadata={"author": author, "pages": len(pages)} if author else {"pages": len(pages)})


class _Engine:
    """The engine process of this process (one request at a time, under a lock), started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._errors: IO[bytes] | None = None  # its stderr, read when it fails
        # Set from a request until its whole reply is read: an engine left busy by an interruption is never
        # asked again, since its next reply would be the old file's.
        self._busy = False

    def read(self, data: bytes, key: str) -> dict:
        """The engine's reply for `data` (see pdf_engine.py). Raises SourceError naming `key` when the
        engine ends on it; on any interruption (the budget's LoaderTimeout) the engine is killed."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    proc = self._running()
                    self._busy = True
                    reply = _exchange(proc, data)
                    self._busy = False
                    return reply
                except BaseException as exc:
                    status, last_error = self._stop()
                    if isinstance(exc, _Overdue):
                        raise SourceError(f"{key}: unreadable PDF (the PDF engine was still reading it after "
                                          f"{ENGINE_DEADLINE_S:g} s); not indexed — report it, or split the "
                                          "file") from None
                    if not isinstance(exc, (BrokenPipeError, EOFError)):
                        raise
                    if status != 0 or attempt == 2:  # status 0: it had left, idle, just before this file
                        raise SourceError(f"{key}: unreadable PDF ({_why(status, last_error)}); not indexed") \
                            from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def forget(self) -> None:
        """In a forked child: leave the parent's engine alone (and a lock another thread may have held)."""
        self._lock, self._proc, self._errors, self._busy = threading.Lock(), None, None, False

    def _running(self) -> subprocess.Popen:
        if self._proc is not None and (self._busy or self._proc.poll() is not None):
            self._stop()
        if self._proc is None:
            self._errors = tempfile.TemporaryFile()
            # Its own session: Ctrl-C or a service stop meant for pai-kb must not end it mid-file
            # and get that file skipped as if it had crashed the engine.
            self._proc = subprocess.Popen([sys.executable, "-I", str(_SCRIPT), str(ENGINE_IDLE_S)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
                                          start_new_session=True)
        return self._proc

    def _stop(self) -> tuple[int | None, str]:
        """Kill the engine, if any: its exit status (None if none ran) and the last line it wrote to stderr.
        Interrupted part way (the budget's alarm repeats), it leaves the engine recorded, so the next
        call stops it again; the engine is forgotten only once it is reaped."""
        proc, errors = self._proc, self._errors
        if proc is None or errors is None:
            return None, ""
        if proc.poll() is None:
            proc.kill()
        status = proc.wait()
        self._proc, self._errors, self._busy = None, None, False
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
        for pipe in (proc.stdout, errors, proc.stdin):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # stdin's buffered request, to a process that is gone
                pass
        return status, lines[-1][:200] if lines else ""


class _Overdue(Exception):
    """The engine has not begun its reply within ENGINE_DEADLINE_S."""


def _exchange(proc: subprocess.Popen, data: bytes) -> dict:
    """Send one request and read its reply. Raises EOFError when the engine ends before replying, _Overdue
    when it has not begun to within ENGINE_DEADLINE_S."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(len(data).to_bytes(8, "big") + data)
    proc.stdin.flush()
    if not select.select([proc.stdout], [], [], ENGINE_DEADLINE_S)[0]:  # nothing buffered yet: the pipe is empty
        raise _Overdue
    header = proc.stdout.read(8)
    size = int.from_bytes(header, "big") if len(header) == 8 else -1
    reply = proc.stdout.read(size) if size >= 0 else b""
    if len(reply) != size:
        raise EOFError
    return json.loads(reply)


def _why(status: int | None, last_error: str) -> str:
    if status is not None and status < 0:
        try:
            return f"the PDF engine was ended by {signal.Signals(-status).name}"
        except ValueError:  # a real-time signal has no name
            return f"the PDF engine was ended by signal {-status}"
    return f"the PDF engine stopped: {last_error or f'exit status {status}'}"


_SCRIPT = Path(__file__).with_name("pdf_engine.py")
_ENGINE = _Engine()
os.register_at_fork(after_in_child=_ENGINE.forget)


def stop_engine() -> None:
    """Stop the engine process, if one runs; the next PDF starts another. Called at exit."""
    _ENGINE.close()


atexit.register(stop_engine)


def _clean(text: str) -> str:
    """PDFium's page text with its line ends as newlines and its marker characters gone."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_MARKERS)
    return " ".join(text.split()) if len(text) < 20 else text.strip()

"""The PDF engine is a child process that serves PDF after PDF: the per-file budget and its own deadline
kill it, a crash costs one file, an idle one leaves, and Ctrl-C meant for pai-kb does not reach it."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pai_kb.errors import LoaderTimeout, SourceError
from pai_kb.loaders import load_bytes
from pai_kb.loaders import pdf as pdf_loader
from pai_kb.loaders.pdf import stop_engine
from pdfs import engine_pids, many_pages

MB = 1 << 20
CAP_S = 20.0
WORKER = Path(__file__).parent / "sigint_worker.py"


def test_budget_stops_the_pdf_engine_and_leaves_no_process_behind():
    """The PDF engine is a child process: the budget's LoaderTimeout kills it, and the next file loads."""
    data = many_pages(MB)
    stop_engine()
    started = time.perf_counter()
    with pytest.raises(LoaderTimeout, match=r"^inbox/big\.pdf: still loading after 0\.05 s"):
        load_bytes(data, "inbox", "big.pdf", budget_s=0.05)
    assert time.perf_counter() - started < 2
    assert engine_pids() == set()
    last = load_bytes(data, "inbox", "big.pdf", budget_s=CAP_S).blocks[-1]
    assert (last.line_start, last.text) == (4032, "page text here")


def test_a_pdf_engine_that_dies_costs_only_that_file():
    """A crash in PDFium's native code ends its process; here a real SIGKILL does it mid-file."""
    data = many_pages(4 * MB)
    stop_engine()
    killed: list[int] = []

    def kill_the_engine() -> None:
        deadline = time.monotonic() + 20
        while not killed and time.monotonic() < deadline:
            for pid in engine_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    killer = threading.Thread(target=kill_the_engine)
    killer.start()
    with pytest.raises(SourceError, match=r"^inbox/crash\.pdf: unreadable PDF \(the PDF engine was ended by "
                                          r"SIGKILL\); not indexed$"):
        load_bytes(data, "inbox", "crash.pdf", budget_s=CAP_S)
    killer.join()
    assert killed and engine_pids() == set()
    last = load_bytes(many_pages(MB), "inbox", "next.pdf").blocks[-1]
    assert (last.line_start, last.text) == (4032, "page text here")
    assert engine_pids() and not engine_pids() & set(killed)


def test_off_the_main_thread_a_pdf_past_the_engine_deadline_is_skipped(monkeypatch):
    """Off the main thread there is no budget; the engine's own deadline still ends a file that runs long."""
    monkeypatch.setattr(pdf_loader, "ENGINE_DEADLINE_S", 0.05)
    data = many_pages(4 * MB)
    raised: list[BaseException] = []

    def load() -> None:
        try:
            load_bytes(data, "inbox", "long.pdf")
        except SourceError as exc:
            raised.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    worker.join(timeout=30)
    assert [str(e) for e in raised] == ["inbox/long.pdf: unreadable PDF (the PDF engine was still reading it after "
                                        "0.05 s); not indexed — report it, or split the file"]
    assert engine_pids() == set()


def test_one_engine_serves_pdf_after_pdf_and_an_idle_one_leaves(monkeypatch):
    monkeypatch.setattr(pdf_loader, "ENGINE_IDLE_S", 0.3)
    stop_engine()
    small = many_pages(4096)
    pages = [len(load_bytes(small, "inbox", f"{n}.pdf").blocks) for n in range(3)]
    assert pages == [15, 15, 15]
    (first,) = engine_pids()  # one process read all three
    deadline = time.monotonic() + 20
    while first in engine_pids() and time.monotonic() < deadline:  # it leaves after 0.3 s without a request
        time.sleep(0.05)
    assert first not in engine_pids()
    assert len(load_bytes(small, "inbox", "later.pdf").blocks) == 15
    assert engine_pids() and first not in engine_pids()
    stop_engine()  # the next test's engine waits the default idle time


def test_ctrl_c_meant_for_pai_kb_does_not_end_the_engine_mid_file():
    """A real SIGINT to the process group (a terminal's Ctrl-C), while the engine reads a file; the worker,
    like `watch`, takes it as a request to stop after the current work."""
    worker = subprocess.run([sys.executable, str(WORKER)], capture_output=True, text=True, timeout=300,
                            start_new_session=True)
    assert worker.returncode == 0, worker.stderr
    assert json.loads(worker.stdout.splitlines()[-1]) == {"interrupted": True, "last_page": [16131, "page text here"]}

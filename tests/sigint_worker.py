"""Loads a 4 MB PDF of 16,131 pages while a Ctrl-C (SIGINT to its whole process group) arrives as soon as
the PDF engine is busy with it; prints {"interrupted": ..., "last_page": [number, text]} or {"error": ...}.
It handles SIGINT as `pai-kb watch` does: a request to stop after the current work."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pai_kb.errors import SourceError  # noqa: E402
from pai_kb.loaders import load_bytes  # noqa: E402
from pdfs import cpu_ticks, engine_pids, many_pages  # noqa: E402

interrupted = threading.Event()
signal.signal(signal.SIGINT, lambda *_: interrupted.set())
load_bytes(many_pages(4096), "inbox", "warm.pdf")  # the engine runs from here
(engine,) = engine_pids()
idle_ticks = cpu_ticks(engine)


def ctrl_c_once_busy() -> None:
    deadline = time.monotonic() + 60
    while cpu_ticks(engine) <= idle_ticks + 2 and time.monotonic() < deadline:  # 2 ticks: it is reading
        time.sleep(0.001)
    os.killpg(os.getpgrp(), signal.SIGINT)


threading.Thread(target=ctrl_c_once_busy, daemon=True).start()
try:
    last = load_bytes(many_pages(4 << 20), "inbox", "innocent.pdf").blocks[-1]
    print(json.dumps({"interrupted": interrupted.wait(10), "last_page": [last.line_start, last.text]}))
except SourceError as exc:
    print(json.dumps({"error": str(exc)}))

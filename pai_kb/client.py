"""Using a running `pai-kb serve` from the CLI: a search then costs one HTTP round trip instead of
loading the model and the store in a fresh process.

`serve` records where it listens in `INDEX/server.json` once it answers, and removes the file when it
stops. Only the
standard library is used here, so this path imports nothing heavy. Any failure (no server, stale file,
timeout, error status) returns None and the CLI searches locally as usual.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RECORD = "server.json"
_TIMEOUT_S = 5.0


@contextmanager
def advertised(index_dir: Path, url: str) -> Iterator[Callable[[], None]]:
    """Yields `announce`, which records the server's URL beside the index; the record goes when the
    block ends. The server calls it once it accepts requests."""
    record = index_dir / RECORD

    def announce() -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        os.replace(tmp, record)

    try:
        yield announce
    finally:
        try:
            if json.loads(record.read_text()).get("pid") == os.getpid():
                record.unlink()
        except (OSError, ValueError):
            pass


def server_url(index_dir: Path) -> str | None:
    try:
        info = json.loads((index_dir / RECORD).read_text())
        os.kill(int(info["pid"]), 0)  # the recorded process still exists
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remote_search(index_dir: Path, params: Mapping[str, Any], token: str | None) -> dict[str, Any] | None:
    url = server_url(index_dir)
    if url is None:
        return None
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, [], ())}, doseq=True)
    request = urllib.request.Request(f"{url}/search?{query}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None

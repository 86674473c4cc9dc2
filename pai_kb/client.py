"""Using a running `pai-kb serve` from the CLI: a search then costs one HTTP round trip instead of
loading the model and the store in a fresh process.

`serve` records where it listens in `INDEX/server.json` once it answers, and removes the file when it
stops. The record is trusted only when the server proves it started it for this user:

1. the record is a regular file owned by this user and readable by nobody else (mode 0600), in the index
   folder (which is never inside a vault: see `config`), naming a live process and a loopback `http` URL;
2. the record holds a random key; the client sends a fresh nonce to `GET /identity` and the server must
   answer HMAC-SHA256(key, nonce). Only a process that could read the record (this user) can answer.

Only then are the query and the bearer token sent. Any failure (no server, stale or foreign record, failed
proof, timeout, error status) returns None and the CLI searches locally as usual; a record that fails the
checks is also logged, since someone wrote it. Only the standard library is used here, so this path
imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pai_kb.models import SearchRequest

__all__ = ["advertised", "new_key", "proof", "remote_search"]

RECORD = "server.json"
_TIMEOUT_S = 5.0
_LOOPBACK_URL = ("http://127.0.0.1:", "http://[::1]:")
# No proxy, whatever the environment says: a loopback request through a proxy would hand it the token.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

log = logging.getLogger("pai_kb")


def new_key() -> str:
    """A fresh random identity key for one server run (64 hex characters)."""
    return secrets.token_hex(32)


def proof(key: str, nonce: str) -> str:
    """What a server holding `key` answers to `nonce`: hex HMAC-SHA256."""
    return hmac.new(key.encode(), nonce.encode(), hashlib.sha256).hexdigest()


@contextmanager
def advertised(index_dir: Path, url: str, key: str) -> Iterator[Callable[[], None]]:
    """Yields `announce`, which records the server's URL and identity key beside the index (mode 0600);
    the record goes when the block ends. The server calls it once it accepts requests."""
    record = index_dir / RECORD

    def announce() -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({"url": url, "pid": os.getpid(), "key": key}))
        os.replace(tmp, record)

    try:
        yield announce
    finally:
        try:
            if json.loads(record.read_text()).get("pid") == os.getpid():
                record.unlink()
        except (OSError, ValueError):
            pass


def _record(index_dir: Path) -> dict[str, Any] | None:
    """The server record if it passes the file checks (step 1 above), else None."""
    path = index_dir / RECORD
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            log.warning("ignoring %s: not a private file of this user (a server record must be mode 0600)", path)
            return None
        try:
            record = json.loads(handle.read(4096))
            url, key, pid = str(record["url"]), str(record["key"]), int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    if not url.startswith(_LOOPBACK_URL):
        log.warning("ignoring %s: it names %s, but pai-kb records only http://127.0.0.1 or http://[::1]",
                    path, url[:80])
        return None
    try:
        os.kill(pid, 0)  # the recorded process still exists
    except (OSError, OverflowError):
        return None
    return {"url": url, "key": key}


def server_url(index_dir: Path) -> str | None:
    """The URL of a running server for this index that proved it holds the record's key, else None."""
    record = _record(index_dir)
    if record is None:
        return None
    nonce = secrets.token_hex(16)
    try:
        with _OPENER.open(f"{record['url']}/identity?nonce={nonce}", timeout=_TIMEOUT_S) as response:
            answer = json.loads(response.read(4096)).get("proof", "")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    if not isinstance(answer, str) or not hmac.compare_digest(answer, proof(record["key"], nonce)):
        log.warning("ignoring the server at %s: it could not prove it is this user's pai-kb", record["url"])
        return None
    return record["url"]


def remote_search(index_dir: Path, request: SearchRequest, token: str | None) -> dict[str, Any] | None:
    """`request` answered by a proven running server (see module doc): what `search --json` prints, or
    None to search locally. The client owns encoding the request and decoding the answer."""
    url = server_url(index_dir)
    if url is None:
        return None
    query = urllib.parse.urlencode(request.params(), doseq=True)
    request = urllib.request.Request(f"{url}/search?{query}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=_TIMEOUT_S) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None

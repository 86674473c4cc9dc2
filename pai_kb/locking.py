"""One writer per index. `index` and `watch` take an exclusive lock on the index folder; a second
writer fails at once with a message naming the holder, rather than waiting silently."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pai_kb.errors import IndexLockedError

__all__ = ["writer_lock"]


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold the exclusive writer lock (`INDEX/write.lock`, holding this pid) for the block, creating the
    folder. Raises IndexLockedError at once when another process holds it; OSError when the folder cannot
    be written."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / "write.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLockedError(f"index {index_dir} is being written by pid {holder} (pai-kb index or "
                                   "watch); wait for it to finish or stop it, then retry") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()

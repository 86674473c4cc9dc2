"""Where an index's files live. Each build of an index is a generation, a folder `gen-N` under the
index folder holding the manifest and the embedded vector store; the file `CURRENT` names the one
readers use. A rebuild (or a model or chunker change) builds the next generation beside the current
one and switches `CURRENT` with one atomic rename, so readers see the old index or the new one, never
none; a build killed half-way leaves `CURRENT` as it was (`--rebuild` then starts afresh, a settings
change resumes it). The
generation before the current one is kept, so a reader still on it finishes its request; older ones
are removed by the next switch.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pai_kb.errors import ConfigError

CURRENT = "CURRENT"
_GENERATION = re.compile(r"gen-(\d+)")


def current(index_dir: Path) -> Path:
    """The generation readers use; `gen-1` before anything was built."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return index_dir / "gen-1"
    except OSError as exc:
        raise ConfigError(f"cannot read {index_dir / CURRENT} ({exc.strerror}); check the index folder's permissions") from exc
    if not _GENERATION.fullmatch(name):
        raise ConfigError(f"{index_dir / CURRENT} is damaged (it says {name[:40]!r}); run `pai-kb index --rebuild`")
    return index_dir / name


def _numbers(index_dir: Path) -> list[int]:
    return [int(m.group(1)) for p in index_dir.glob("gen-*") if (m := _GENERATION.fullmatch(p.name))]


def following(index_dir: Path) -> Path:
    """A new generation folder's path, numbered after every one that exists (finished or not)."""
    return index_dir / f"gen-{max(_numbers(index_dir), default=0) + 1}"


def newest(index_dir: Path) -> Path | None:
    """The highest-numbered generation folder: the current one, or a build not finished yet."""
    numbers = _numbers(index_dir)
    return index_dir / f"gen-{max(numbers)}" if numbers else None


def switch(index_dir: Path, generation: Path) -> None:
    """Make `generation` current in one atomic step, durable before it returns."""
    tmp = index_dir / f"{CURRENT}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(generation.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / CURRENT)


def prune(index_dir: Path, keep: set[Path]) -> list[Path]:
    """Remove generations other than `keep` (unfinished ones included); returns what was removed."""
    removed = []
    for path in index_dir.glob("gen-*"):
        if _GENERATION.fullmatch(path.name) and path not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

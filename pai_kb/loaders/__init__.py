"""Loaders turn one file into a `Document`; `load_file` picks the loader by suffix.

Each loader is a pure function of the file's text, so it can be tested with literal inputs; this module
does the only I/O (one read) and turns every failure into a `SourceError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from pai_kb.errors import SourceError
from pai_kb.models import Document

SUFFIXES = frozenset({".md", ".markdown"})


def load_bytes(data: bytes, root: str, path: str) -> Document:
    from pai_kb.loaders.markdown import load_markdown
    from pai_kb.loaders.text import decode

    text, warnings = decode(data, f"{root}/{path}")
    return load_markdown(text, root, path, warnings)


def read_file(abspath: Path, key: str, max_bytes: int) -> bytes:
    try:
        size = abspath.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{key}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                              "skipped (raise sources.max_file_bytes to index it)")
        with abspath.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise SourceError(f"{key}: deleted while indexing; it will be dropped on the next sync") from exc
    except OSError as exc:
        raise SourceError(f"{key}: cannot be read ({exc.strerror}); check its permissions") from exc

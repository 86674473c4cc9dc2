"""Loaders turn one file into a `Document`; this module only picks the loader by suffix and reads the
file's bytes. Each loader owns its format whole (decoding, metadata, sidecars) and is a function of
bytes, tested with literal inputs. Every failure is a `SourceError` naming the file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pai_kb.errors import FileTooLarge, SourceError
from pai_kb.models import Document

SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".vtt", ".srt", ".txt", ".json", ".pdf"})
# JSON in a vault is plugin data and settings, not material: only the inbox takes JSON transcripts.
INBOX_ONLY = frozenset({".json"})
TIMED = frozenset({".vtt", ".srt", ".txt", ".json"})


def load_bytes(data: bytes, root: str, path: str, sidecar: dict | None = None) -> Document:
    """`sidecar` is metadata found beside the file (url, title) for formats that cannot carry it."""
    suffix = PurePosixPath(path).suffix.lower()
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


def read_sidecar(abspath: Path) -> dict:
    """Metadata stored beside a transcript (see `transcript.read_sidecar`); empty for other files."""
    if abspath.suffix.lower() not in TIMED:
        return {}
    from pai_kb.loaders.transcript import read_sidecar as read

    return read(abspath)


def read_file(abspath: Path, key: str, max_bytes: int) -> bytes:
    try:
        size = abspath.stat().st_size
        if size > max_bytes:
            raise FileTooLarge(f"{key}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                               "skipped (raise sources.max_file_bytes to index it)")
        with abspath.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise SourceError(f"{key}: deleted while indexing; it will be dropped on the next sync") from exc
    except OSError as exc:
        raise SourceError(f"{key}: cannot be read ({exc.strerror}); check its permissions") from exc

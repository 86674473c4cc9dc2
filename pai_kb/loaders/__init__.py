"""Loaders turn one file into a `Document`; `load_file` picks the loader by suffix.

Each loader is a function of the file's bytes, tested with literal inputs; this module does the only
I/O (the file and, for transcripts, a sidecar with its source URL) and turns every failure into a
`SourceError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from pai_kb.errors import SourceError
from pai_kb.models import Document

SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".vtt", ".srt", ".txt", ".json", ".pdf"})
# JSON in a vault is plugin data and settings, not material: only the inbox takes JSON transcripts.
INBOX_ONLY = frozenset({".json"})
_SIDECARS = (".json", ".md")


def load_bytes(data: bytes, root: str, path: str, sidecar: dict | None = None) -> Document:
    """`sidecar` is metadata found beside the file (url, title) for formats that cannot carry it."""
    suffix = PurePosixPath(path).suffix.lower()
    key = f"{root}/{path}"
    if suffix in (".html", ".htm"):
        from pai_kb.loaders.html import load_html

        return load_html(data, root, path)
    if suffix == ".pdf":
        from pai_kb.loaders.pdf import load_pdf

        return load_pdf(data, root, path)
    from pai_kb.loaders.text import decode

    text, warnings = decode(data, key)
    if suffix in (".vtt", ".srt", ".txt", ".json"):
        return _with_sidecar(_load_timed(text, root, path, suffix, warnings), sidecar or {})
    from pai_kb.loaders.markdown import load_markdown

    return load_markdown(text, root, path, warnings)


def _load_timed(text: str, root: str, path: str, suffix: str, warnings: tuple[str, ...]) -> Document:
    from pai_kb.loaders import transcript as t

    key = f"{root}/{path}"
    if suffix in (".vtt", ".srt"):
        doc = t.load_subtitles(text, root, path)
        return t.transcript_document(list(doc.blocks), root, path, doc.title, doc.url, dict(doc.metadata),
                                     doc.warnings + warnings)
    if suffix == ".json":
        try:
            blocks, meta = t.parse_json(text)
        except SourceError as exc:
            raise SourceError(f"{key}: {exc}") from exc
        url = meta.get("url") or meta.get("webpage_url") or meta.get("source")
        return t.transcript_document(blocks, root, path, meta.get("title"), url if isinstance(url, str) else None,
                                     {}, warnings)
    header = _text_header(text)
    blocks = t.parse_stamped_text(text)
    if blocks is None:
        # No timestamps: still worth indexing as prose. In the inbox it is a transcript; in the vault a note.
        from pai_kb.loaders.markdown import load_markdown

        doc = load_markdown(text, root, path, warnings)
        kind = "transcript" if root == "inbox" else "note"
        return Document(root=root, path=path, title=header.get("title") or doc.title, source_type=kind,
                        blocks=doc.blocks, url=header.get("url"), warnings=doc.warnings)
    return t.transcript_document(blocks, root, path, header.get("title"), header.get("url"), header, warnings)


def _text_header(text: str) -> dict[str, str]:
    from pai_kb.loaders.transcript import _HEADER

    header: dict[str, str] = {}
    for line in text.split("\n")[:5]:
        found = _HEADER.match(line.strip())
        if found:
            header.setdefault("url" if found.group(1).lower() == "source" else found.group(1).lower(), found.group(2))
    return header


def _with_sidecar(doc: Document, sidecar: dict) -> Document:
    if not sidecar or doc.source_type != "transcript":
        return doc
    from dataclasses import replace

    url = doc.url or next((v for k in ("url", "webpage_url", "source") if isinstance(v := sidecar.get(k), str)), None)
    title = sidecar.get("title") if isinstance(sidecar.get("title"), str) and doc.title == PurePosixPath(doc.path).stem else None
    return replace(doc, url=url, title=title or doc.title)


def read_sidecar(abspath: Path) -> dict:
    """Metadata in `name.json` (a dict, e.g. yt-dlp's info file) or `name.md` frontmatter beside `name.vtt`."""
    if abspath.suffix.lower() not in (".vtt", ".srt", ".txt", ".json"):
        return {}
    for suffix in _SIDECARS:
        other = abspath.with_suffix(suffix)
        if other == abspath or not other.is_file():
            continue
        try:
            raw = other.read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        if suffix == ".json":
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
        else:
            from pai_kb.loaders.frontmatter import split_frontmatter

            data = dict(split_frontmatter(raw.split("\n")).data)
            if data:
                return data
    return {}


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

"""Transcripts → timed cues → a Document whose blocks carry start/end seconds.

One tolerant cue parser reads both WebVTT and SRT: cue numbers and identifiers, NOTE/STYLE/REGION
blocks, hour-less and unpadded timestamps, missing blank lines, and cues with bad timestamps (skipped,
counted in a warning). Markup is stripped (`<c>`, inline word timestamps, `<v Speaker>` kept as a
speaker name) and YouTube's rolling captions, which repeat the previous line in every cue, are
de-duplicated. Plain text with `[00:01:23]`, `00:01:23` or `1:23` line prefixes and JSON lists
(`{text, start, duration|end}` or `[text, start, end]`) give cues too.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from pai_kb.errors import SourceError
from pai_kb.models import Block, Document

_TS = r"(?:\d+:)?\d{1,2}:\d{1,2}(?:[.,]\d{1,3})?"
_TIMING = re.compile(rf"^\s*({_TS})\s*-->\s*({_TS})")
_TIMING_LOOSE = re.compile(r"-->")
_TEXT_STAMP = re.compile(rf"^\s*\[?({_TS})\]?\s*[-–—:]?\s+(\S.*)$")
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+([^>]+)>")
_TAG = re.compile(r"<[^>]*>")
_HEADER = re.compile(r"^(url|source|title)\s*:\s*(\S.*)$", re.I)
_SKIP_BLOCKS = ("NOTE", "STYLE", "REGION", "WEBVTT")


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str] = field(default_factory=list)
    line_start: int = 0
    line_end: int = 0


def seconds(stamp: str) -> float:
    """`1:02:03.5`, `02:03,500`, `0:0:0.210` → seconds."""
    main, _, frac = stamp.replace(",", ".").partition(".")
    total = 0.0
    for part in main.split(":"):
        total = total * 60 + int(part)
    return total + (float(f"0.{frac}") if frac else 0.0)


def parse_cues(text: str) -> tuple[list[Cue], dict[str, str], int]:
    """(cues, header fields such as url/title, number of cues skipped for bad timestamps)."""
    cues: list[Cue] = []
    header: dict[str, str] = {}
    current: Cue | None = None
    skipping = in_header = False
    bad = 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        match = _TIMING.match(stripped)
        if match:
            if current and current.lines and current.lines[-1].strip().isdigit():
                current.lines.pop()  # an SRT cue number that lost its blank line
            current = Cue(seconds(match.group(1)), seconds(match.group(2)), [], number, number)
            cues.append(current)
            skipping = in_header = False
            continue
        if not stripped:
            current, skipping, in_header = None, False, False
            continue
        if current is None and _TIMING_LOOSE.search(stripped):
            bad += 1
            skipping = True  # a cue whose timing cannot be read: drop its text
        if skipping:
            continue
        if current is None:
            if stripped.startswith("WEBVTT"):
                in_header = True
            elif in_header or not cues:
                found = _HEADER.match(stripped)
                if found:
                    header.setdefault(found.group(1).lower(), found.group(2).strip())
            skipping = stripped.split(" ")[0].rstrip(":") in _SKIP_BLOCKS and not in_header
            continue  # cue identifiers and header lines are not text
        current.lines.append(line)
        current.line_end = number
    return cues, header, bad


def clean_cues(cues: list[Cue]) -> list[Block]:
    """Markup stripped, rolling duplicates dropped, speaker named when it changes."""
    blocks: list[Block] = []
    previous: set[str] = set()
    speaker = None
    for cue in cues:
        lines, voice = [], None
        for raw in cue.lines:
            found = _VOICE.search(raw)
            voice = found.group(1).strip() if found else voice
            text = " ".join(html.unescape(_TAG.sub("", raw)).split())
            if text:
                lines.append(text)
        fresh = [line for line in lines if line not in previous]
        previous = set(lines)
        if not fresh:
            continue
        text = " ".join(fresh)
        if voice and voice != speaker:
            text = f"{voice}: {text}"
        speaker = voice or speaker
        blocks.append(Block("cue", text, cue.line_start, cue.line_end, start_s=cue.start, end_s=max(cue.end, cue.start)))
    return blocks


def parse_stamped_text(text: str) -> list[Block] | None:
    """Timestamped plain text, or None when fewer than half the non-empty lines carry a timestamp."""
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    stamped = [(n, _TEXT_STAMP.match(line)) for n, line in lines]
    hits = [(n, m) for n, m in stamped if m]
    if not hits or len(hits) * 2 < len(lines):
        return None
    blocks = []
    for i, (n, m) in enumerate(hits):
        start = seconds(m.group(1))
        end = seconds(hits[i + 1][1].group(1)) if i + 1 < len(hits) else start
        blocks.append(Block("cue", m.group(2).strip(), n, n, start_s=start, end_s=max(start, end)))
    return blocks


def parse_json(text: str) -> tuple[list[Block], dict[str, Any]]:
    """A list of cues → blocks; a dict is metadata (a sidecar), with a `segments`/`cues` list if any."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise SourceError("JSON nested too deeply to be a transcript") from exc
    meta: dict[str, Any] = {}
    if isinstance(data, dict):
        meta = data
        data = next((data[k] for k in ("segments", "cues", "transcript") if isinstance(data.get(k), list)), [])
    if not isinstance(data, list):
        return [], meta
    lines = text.split("\n")
    blocks: list[Block] = []
    cursor = 0
    for item in data:
        cue = _json_cue(item)
        if cue is None:
            continue
        body, start, end = cue
        cursor = _find_line(lines, body, cursor)
        blocks.append(Block("cue", body, cursor + 1, cursor + 1, start_s=start, end_s=max(start, end)))
    return blocks, meta


def _json_cue(item: Any) -> tuple[str, float, float] | None:
    try:
        if isinstance(item, dict) and "text" in item:
            start = float(item.get("start", 0))
            end = float(item["end"]) if "end" in item else start + float(item.get("duration", 0))
            return " ".join(str(item["text"]).split()), start, end
        if isinstance(item, list) and len(item) >= 3:
            return " ".join(str(item[0]).split()), float(item[1]), float(item[2])
    except (TypeError, ValueError):
        return None
    return None


def _find_line(lines: list[str], body: str, cursor: int) -> int:
    """Where a cue's text sits in the JSON file, so citations can point at it."""
    probe = json.dumps(body[:40])[1:-1][:30]
    for i in range(cursor, len(lines)):
        if probe and probe in lines[i]:
            return i
    return cursor


def transcript_document(blocks: list[Block], root: str, path: str, title: str | None, url: str | None,
                        metadata: dict[str, Any], warnings: tuple[str, ...] = ()) -> Document:
    return Document(root=root, path=path, title=title or PurePosixPath(path).stem, source_type="transcript",
                    blocks=tuple(blocks), metadata=metadata, url=url, warnings=warnings,
                    tags=tuple(str(t) for t in metadata.get("tags", []) if t) if isinstance(metadata.get("tags"), list) else ())


def load_subtitles(text: str, root: str, path: str) -> Document:
    cues, header, bad = parse_cues(text)
    if not cues:
        raise SourceError(f"{root}/{path}: no cues with readable timestamps; not indexed")
    warnings = (f"{root}/{path}: {bad} cue(s) with unreadable timestamps skipped",) if bad else ()
    return transcript_document(clean_cues(cues), root, path, header.get("title"),
                               header.get("url") or header.get("source"), dict(header), warnings)


def load_transcript(data: bytes, root: str, path: str, suffix: str, sidecar: dict[str, Any]) -> Document:
    """A `.vtt`, `.srt`, `.json` or `.txt` file as a transcript, its URL and title from the file itself,
    else from `sidecar`. Text without timestamps is still prose worth indexing: in the inbox a
    transcript, in the vault a note."""
    from pai_kb.loaders.text import decode

    key = f"{root}/{path}"
    text, warnings = decode(data, key)
    if suffix in (".vtt", ".srt"):
        doc = load_subtitles(text, root, path)
        doc = replace(doc, warnings=doc.warnings + warnings)
    elif suffix == ".json":
        doc = _load_json(text, root, path, warnings)
    else:
        blocks = parse_stamped_text(text)
        header = _text_header(text)
        doc = (_untimed(text, root, path, header, warnings) if blocks is None else
               transcript_document(blocks, root, path, header.get("title"), header.get("url"), header, warnings))
    return _with_sidecar(doc, sidecar) if doc.source_type == "transcript" else doc


def _load_json(text: str, root: str, path: str, warnings: tuple[str, ...]) -> Document:
    try:
        blocks, meta = parse_json(text)
    except SourceError as exc:
        raise SourceError(f"{root}/{path}: {exc}") from exc
    url = meta.get("url") or meta.get("webpage_url") or meta.get("source")
    return transcript_document(blocks, root, path, meta.get("title"), url if isinstance(url, str) else None,
                               {}, warnings)


def _untimed(text: str, root: str, path: str, header: dict[str, str], warnings: tuple[str, ...]) -> Document:
    from pai_kb.loaders.markdown import load_markdown

    doc = load_markdown(text, root, path, warnings)
    kind = "transcript" if root == "inbox" else "note"
    return Document(root=root, path=path, title=header.get("title") or doc.title, source_type=kind,
                    blocks=doc.blocks, url=header.get("url"), warnings=doc.warnings)


def _text_header(text: str) -> dict[str, str]:
    """`Title: ...` / `URL: ...` / `Source: ...` lines at the top of a plain-text transcript."""
    header: dict[str, str] = {}
    for line in text.split("\n")[:5]:
        found = _HEADER.match(line.strip())
        if found:
            header.setdefault("url" if found.group(1).lower() == "source" else found.group(1).lower(), found.group(2))
    return header


def _with_sidecar(doc: Document, sidecar: dict[str, Any]) -> Document:
    if not sidecar:
        return doc
    url = doc.url or next((v for k in ("url", "webpage_url", "source") if isinstance(v := sidecar.get(k), str)), None)
    untitled = doc.title == PurePosixPath(doc.path).stem
    title = sidecar.get("title") if isinstance(sidecar.get("title"), str) and untitled else None
    return replace(doc, url=url, title=title or doc.title)


_SIDECARS = (".json", ".md")


def read_sidecar(abspath: Path) -> dict[str, Any]:
    """Metadata in `name.json` (a dict, e.g. yt-dlp's info file) or `name.md` frontmatter beside `name.vtt`."""
    for suffix in _SIDECARS:
        other = abspath.with_suffix(suffix)
        if other == abspath or not other.is_file():
            continue
        try:
            raw = other.read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        data = _sidecar_data(raw, suffix)
        if data:
            return data
    return {}


def _sidecar_data(raw: str, suffix: str) -> dict[str, Any]:
    if suffix == ".json":
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}
    from pai_kb.loaders.frontmatter import split_frontmatter

    return dict(split_frontmatter(raw.split("\n")).data)

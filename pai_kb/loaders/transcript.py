"""Transcripts → timed cues → a Document whose blocks carry start/end seconds.

One tolerant cue parser reads both WebVTT and SRT: cue numbers and identifiers, NOTE/STYLE/REGION
blocks, hour-less and unpadded timestamps, missing blank lines, blank lines between a timing line and
its text, and cues with bad timestamps (skipped, counted in a warning). Text that belongs to no cue is
kept with the nearest cue and counted in a warning, never dropped. Only the markup the formats define
is stripped (`<c>`, inline word timestamps, `<v Speaker>` kept as a speaker name, SRT's `<font>`):
every other `<` and `>` is text. YouTube's rolling captions, which repeat the previous line in every
cue, are de-duplicated. Plain text with `[00:01:23]`, `00:01:23` or `1:23` line prefixes and JSON
lists (`{text, start, duration|end}` or `[text, start, end]`) give cues too. Every parser here runs in
time linear in its input (tests/test_linear_time.py).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from pai_kb.errors import SourceError
from pai_kb.models import Block, Document

__all__ = ["clean_cues", "load_transcript", "parse_cues", "parse_json", "parse_stamped_text", "read_sidecar", "seconds",
           "transcript_document"]

_TS = r"(?:\d+:)?\d{1,2}:\d{1,2}(?:[.,]\d{1,3})?"
_TIMING = re.compile(rf"^\s*({_TS})\s*-->\s*({_TS})")
_TIMING_LOOSE = re.compile(r"-->")
# One whitespace run between the stamp and the text: two adjacent `\s*` would backtrack quadratically.
_TEXT_STAMP = re.compile(rf"^\s*\[?({_TS})\]?(?:\s*[-–—:])?\s+(\S.*)$")
# Only the markup the formats define: WebVTT's <c>, <i>, <b>, <u>, <ruby>, <rt> (with .class suffixes),
# <v Name> and <lang tag> (with an annotation), inline <00:00:01.000> timestamps, SRT's <font ...>; opening
# and closing. Every other `<` and `>` is text ("x < 5 and y > 2"). No part of a tag crosses a `<` or `>`,
# so each search from a `<` stops at the next one and stripping a line takes time linear in its length.
_MARKUP = re.compile(r"<(?:/?(?:c|i|b|u|ruby|rt)(?:\.[^\s<>]*)?|/?(?:v|lang)(?:\.[^\s<>]*)?(?:\s[^<>]*)?"
                     r"|/?font(?:\s[^<>]*)?|\d+(?::\d+)+(?:[.,]\d+)?)>", re.I)
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?\s([^<>]*)>", re.I)
_HEADER = re.compile(r"^(url|source|title)\s*:\s*(\S.*)$", re.I)
_SKIP_BLOCKS = ("NOTE", "STYLE", "REGION", "WEBVTT")


@dataclass
class Cue:
    """One subtitle cue: start and end in seconds, its text lines, and the 1-based lines of the file it spans."""
    start: float
    end: float
    lines: list[str] = field(default_factory=list)
    line_start: int = 0
    line_end: int = 0
    stray: int = 0  # lines of text found outside every cue's block and kept with this cue


def seconds(stamp: str) -> float:
    """`1:02:03.5`, `02:03,500`, `0:0:0.210` → seconds."""
    main, _, frac = stamp.replace(",", ".").partition(".")
    total = 0.0
    for part in main.split(":"):
        total = total * 60 + int(part)
    return total + (float(f"0.{frac}") if frac else 0.0)


def parse_cues(text: str) -> tuple[list[Cue], dict[str, str], int]:
    """(cues, header fields such as url/title, number of cues skipped for bad timestamps).

    A cue's text runs from its timing line to the first blank line after some text: blank lines right
    after the timing line do not end it. After a blank line, one line directly followed by a timing line
    is that cue's identifier (an SRT cue number), and a NOTE/STYLE/REGION block is skipped; any other text
    there belongs to no cue, so it is kept with the cue before it (the first cue, for text before any
    cue) and counted in that cue's `stray`. One pass, constant work per line.
    """
    reader = _CueReader()
    for number, line in enumerate(text.split("\n"), start=1):
        reader.feed(number, line)
    reader.finish()
    return reader.cues, reader.header, reader.bad


class _CueReader:
    """The state of `parse_cues` between lines."""

    def __init__(self) -> None:
        self.cues: list[Cue] = []
        self.header: dict[str, str] = {}
        self.bad = 0
        self.open: Cue | None = None  # the cue whose text is being read
        self.gap = False  # a blank line came between the open cue's timing line and any text
        self.loose: list[tuple[int, str]] = []  # lines after a cue ended: an identifier or stray text
        self.early: list[tuple[int, str]] = []  # stray text before the first cue
        self.skipping = self.in_header = False

    def feed(self, number: int, line: str) -> None:
        stripped = line.strip()
        match = _TIMING.match(stripped)
        if match:
            self._timing(number, match)
        elif not stripped:
            self._blank()
        elif not self.skipping:
            self._text(number, line, stripped)

    def _timing(self, number: int, match: re.Match[str]) -> None:
        if self.open and self.open.lines and self.open.lines[-1].strip().isdigit():
            self.open.lines.pop()  # an SRT cue number that lost its blank line
        self._drop_identifier()
        self.flush_loose()
        cue = Cue(seconds(match.group(1)), seconds(match.group(2)), [], number, number)
        self.cues.append(cue)
        self.open, self.gap = cue, False
        self.skipping = self.in_header = False

    def _blank(self) -> None:
        if self.open is not None and not self.open.lines:
            self.gap = True  # text after a blank line still belongs to this cue
        else:
            self.open = None
            self.flush_loose()
        self.skipping = self.in_header = False

    def _text(self, number: int, line: str, stripped: str) -> None:
        if self.open is not None and not (self.gap and _starts_block(stripped)):
            self.open.lines.append(line)
            self.open.line_end = number
            return
        self.open = None
        if _TIMING_LOOSE.search(stripped):
            self.bad += 1
            self.skipping = True  # a cue whose timing cannot be read: drop its text (counted)
            self._drop_identifier()
            self.flush_loose()
        elif stripped.startswith("WEBVTT") and not self.cues:
            self.in_header = True
        elif self.in_header or not self.cues and _HEADER.match(stripped):
            found = _HEADER.match(stripped)
            if found:
                self.header.setdefault(found.group(1).lower(), found.group(2).strip())
        elif not self.loose and _starts_block(stripped):
            self.skipping = True
        else:
            self.loose.append((number, line))

    def _drop_identifier(self) -> None:
        """Before a timing line: one loose line, or a last line that is a number, names the cue."""
        if len(self.loose) == 1 or self.loose and self.loose[-1][1].strip().isdigit():
            self.loose.pop()

    def flush_loose(self) -> None:
        """Loose lines not followed by a timing line are text outside any cue: keep them."""
        if not self.loose:
            return
        if self.cues:
            self._keep(self.cues[-1], self.loose)
        else:
            self.early.extend(self.loose)
        self.loose = []

    def finish(self) -> None:
        self.flush_loose()
        if self.cues and self.early:
            first = self.cues[0]
            first.lines[:0] = [line for _, line in self.early]
            first.stray += len(self.early)
            first.line_start = self.early[0][0]

    @staticmethod
    def _keep(cue: Cue, lines: list[tuple[int, str]]) -> None:
        cue.lines.extend(line for _, line in lines)
        cue.stray += len(lines)
        cue.line_end = max(cue.line_end, lines[-1][0])


def _starts_block(stripped: str) -> bool:
    return stripped.split(" ")[0].rstrip(":") in _SKIP_BLOCKS


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
            text = " ".join(html.unescape(_MARKUP.sub("", raw)).split())
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
    """A list of cues → blocks; a dict is metadata (a sidecar), with a `segments`/`cues` list if any.
    Raises SourceError when the text is not JSON or is nested too deeply."""
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
    strings = _string_lines(text)
    blocks: list[Block] = []
    line = 0
    for item in data:
        cue = _json_cue(item)
        if cue is None:
            continue
        raw, start, end = cue
        if isinstance(raw, str):
            line = next((n for n, value in strings if value == raw), line)
        body = " ".join(str(raw).split())
        blocks.append(Block("cue", body, line + 1, line + 1, start_s=start, end_s=max(start, end)))
    return blocks, meta


def _json_cue(item: Any) -> tuple[Any, float, float] | None:
    """(text as stored, start, end) of one `{text, start, duration|end}` or `[text, start, end]` item."""
    try:
        if isinstance(item, dict) and "text" in item:
            start = float(item.get("start", 0))
            end = float(item["end"]) if "end" in item else start + float(item.get("duration", 0))
            return item["text"], start, end
        if isinstance(item, list) and len(item) >= 3:
            return item[0], float(item[1]), float(item[2])
    except (TypeError, ValueError):
        return None
    return None


# A JSON string literal in a valid document: every `"` outside one opens the next.
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')


def _string_lines(text: str) -> Iterator[tuple[int, str]]:
    """(0-based line, decoded value) of each string literal of valid JSON `text`, in file order. Cues
    are looked up in this one forward stream, so placing every cue of a file is one pass over it
    however its texts are escaped or spaced."""
    line, last = 0, 0
    for match in _STRING.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        literal = match.group()
        yield line, json.loads(literal) if "\\" in literal else literal[1:-1]


def transcript_document(blocks: list[Block], root: str, path: str, title: str | None, url: str | None,
                        metadata: dict[str, Any], warnings: tuple[str, ...] = ()) -> Document:
    """A transcript document from its cue blocks; the title falls back to the file name, tags come from
    `metadata['tags']` when it is a list."""
    return Document(root=root, path=path, title=title or PurePosixPath(path).stem, source_type="transcript",
                    blocks=tuple(blocks), metadata=metadata, url=url, warnings=warnings,
                    tags=tuple(str(t) for t in metadata.get("tags", []) if t) if isinstance(metadata.get("tags"), list) else ())


def load_subtitles(text: str, root: str, path: str) -> Document:
    """A `.vtt` or `.srt` file's text as a transcript (see `clean_cues`), title and URL from its header;
    skipped cues and stray lines become warnings. Raises SourceError when no cue has a readable timestamp."""
    cues, header, bad = parse_cues(text)
    if not cues:
        raise SourceError(f"{root}/{path}: no cues with readable timestamps; not indexed")
    stray = sum(cue.stray for cue in cues)
    warnings = tuple(message for count, message in (
        (bad, f"{root}/{path}: {bad} cue(s) with unreadable timestamps skipped"),
        (stray, f"{root}/{path}: {stray} line(s) of text outside any cue (after a blank line that ended a cue) "
                "kept with the nearest cue; check the file's blank lines"),
    ) if count)
    return transcript_document(clean_cues(cues), root, path, header.get("title"),
                               header.get("url") or header.get("source"), dict(header), warnings)


def load_transcript(data: bytes, root: str, path: str, suffix: str, sidecar: dict[str, Any]) -> Document:
    """A `.vtt`, `.srt`, `.json` or `.txt` file as a transcript, its URL and title from the file itself,
    else from `sidecar`. Text without timestamps is still prose worth indexing: in the inbox a
    transcript, in the vault a note. Raises SourceError for binary content, or subtitles or JSON without
    readable cues."""
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

"""Turning bytes on disk into text, for every loader.

Personal files are messy: BOMs, UTF-16 exports, Latin-1 leftovers, attachments with a .md name. We decode
what can be decoded (with a warning when bytes had to be replaced) and refuse only what is clearly binary.
"""

from __future__ import annotations

import codecs

from pai_kb.errors import SourceError

_SNIFF_BYTES = 8192


def decode(data: bytes, name: str) -> tuple[str, tuple[str, ...]]:
    """Return (text, warnings). Raises SourceError for binary content."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _normalise(data.decode(encoding, errors="replace")), ()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise SourceError(f"{name}: looks binary (NUL bytes); not indexed — rename it if it is not a note")
    try:
        return _normalise(data.decode("utf-8")), ()
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        return _normalise(text), (f"{name}: invalid UTF-8 at byte {exc.start}; undecodable bytes replaced",)


def _normalise(text: str) -> str:
    # NUL characters from a UTF-16 file or a bad export break SQLite FTS and the tokenizer alike.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")

"""Turning bytes on disk into text, for every loader.

Personal files are messy: BOMs, UTF-16 exports, Latin-1 leftovers, attachments with a .md name. We decode
what can be decoded (with a warning when bytes had to be replaced) and refuse only what is clearly binary.
"""

from __future__ import annotations

import codecs
import unicodedata

from pai_kb.errors import SourceError

__all__ = ["decode", "looks_binary"]

_SNIFF_BYTES = 8192
# Decoded text is binary whatever its name says (random bytes named .html, or read as UTF-16 because
# they happen to start with FF FE) when more than _NOISE_SHARE of it is characters no person writes
# (controls, unassigned or private-use code points), or more than _REPLACED_SHARE could not be decoded
# at all. A Latin-1 note read as UTF-8 loses a few accented letters (under a tenth) and stays text.
_NOISE_SHARE = 0.1
_REPLACED_SHARE = 0.3
_NOISE = frozenset({"Cc", "Cn", "Co", "Cs"})


def decode(data: bytes, name: str) -> tuple[str, tuple[str, ...]]:
    """Return (text, warnings). Raises SourceError for binary content."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _checked(_normalise(data.decode(encoding, errors="replace")), name), ()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise SourceError(f"{name}: looks binary (NUL bytes); not indexed — rename it if it is not a note")
    try:
        return _normalise(data.decode("utf-8")), ()
    except UnicodeDecodeError as exc:
        text = _checked(data.decode("utf-8", errors="replace"), name)
        return _normalise(text), (f"{name}: invalid UTF-8 at byte {exc.start}; undecodable bytes replaced",)


def looks_binary(text: str) -> bool:
    """Whether decoded `text` is binary: of its first 8,192 characters over 10% controls, unassigned or
    private-use code points, or over 30% U+FFFD (bytes that could not be decoded)."""
    sample = text[:_SNIFF_BYTES]
    replaced = sample.count("\ufffd")
    noise = sum(1 for ch in sample if ch not in "\n\r\t\f" and unicodedata.category(ch) in _NOISE)
    return bool(sample) and (noise > len(sample) * _NOISE_SHARE or replaced > len(sample) * _REPLACED_SHARE)


def _checked(text: str, name: str) -> str:
    if looks_binary(text):
        raise SourceError(f"{name}: looks binary (mostly undecodable bytes); not indexed — rename it if it is not a note")
    return text


def _normalise(text: str) -> str:
    # NUL characters from a UTF-16 file or a bad export break SQLite FTS and the tokenizer alike.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")

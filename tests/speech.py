"""Test speech: WAVs spoken by Debian's espeak-ng (sentences and silences, in order) and re-encoded with
PyAV, shared by the audio and recording-note tests. No audio file is committed; each is made here."""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

ESPEAK = shutil.which("espeak-ng")
# In CI (.ci/run installs it) a missing espeak-ng fails the tests rather than skipping them.
needs_espeak = pytest.mark.skipif(ESPEAK is None and not os.environ.get("CI"),
                                  reason="espeak-ng is absent: apt-get install espeak-ng (.ci/run does)")

BUDGET = "The quarterly budget meeting moved to Thursday afternoon."
GARDEN = "Remember to water the tomato plants before the heat wave."
RATE = 22050  # espeak-ng writes 16-bit mono at this rate


def speak(path: Path, *parts: str | float, voice: str = "en", speed: int = 175) -> list[float]:
    """A WAV at `path` of the spoken sentences (str) and silences (float, seconds) in order; returns the
    second at which each sentence starts."""
    frames, starts, at = [], [], 0
    for n, part in enumerate(parts):
        if isinstance(part, str):
            piece = path.with_name(f".part{n}.wav")
            subprocess.run([ESPEAK, "-v", voice, "-s", str(speed), "-w", str(piece), part], check=True)
            with wave.open(str(piece)) as w:
                assert w.getframerate() == RATE
                data = w.readframes(w.getnframes())
            piece.unlink()
            starts.append(at / RATE)
        else:
            data = b"\0\0" * int(part * RATE)
        frames.append(data)
        at += len(data) // 2
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(frames))
    return starts


def convert(wav: Path | BinaryIO, target: Path | BinaryIO, container: str, codec: str) -> Path | BinaryIO:
    """Re-encode with PyAV (the FFmpeg faster-whisper itself decodes with), e.g. ("ipod", "aac") for .m4a;
    either side may be a path or a file object."""
    import av

    with av.open(_opened(wav)) as source, av.open(_opened(target), "w", format=container) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else RATE)
        mux_audio(source.decode(source.streams.audio[0]), stream, out)
    return target


def mux_audio(frames: Iterable[Any], stream: Any, out: Any) -> None:
    """Encode the audio `frames` on `stream` of the container `out`, writing every packet, then flush."""
    for frame in frames:
        frame.pts = None
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _opened(file: Path | BinaryIO) -> str | BinaryIO:
    return str(file) if isinstance(file, Path) else file

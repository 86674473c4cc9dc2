"""Edits the stat check cannot see: a rewrite that keeps size and mtime is found by ctime and inode,
a file read too close to a write is read again (git's "racily clean"), and `status --verify` reads
everything for file systems whose stat shows nothing at all (FAT keeps no ctime)."""

import os
from dataclasses import replace
from pathlib import Path

from conftest import make_kb
from pai_kb.manifest import FileState
from pai_kb.sources import SourceFile, discover
from pai_kb.changes import diff_stats, observed

KEY = "vault/Errands.md"
BEFORE = "# Errands\n\n- [ ] renew the passport at room 101\n"
AFTER = "# Errands\n\n- [x] renew the passport at room 202\n"


def rewrite_keeping_mtime(path: Path, text: str) -> None:
    """What an editor on FAT/SMB can leave behind: new content, same size, same mtime (`touch -d`)."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


def indexed_errands(tmp_path, embedder):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Errands.md").write_text(BEFORE)
    (vault / "Other.md").write_text("# Other\n\nNothing about passports.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    return kb, vault


def found_rooms(kb) -> list[str]:
    return [h.chunk.text for h in kb.search("passport room", k=3, mode="keyword")]


def test_rewrite_with_the_same_size_and_mtime_is_found_by_ctime(tmp_path, embedder):
    kb, vault = indexed_errands(tmp_path, embedder)
    rewrite_keeping_mtime(vault / "Errands.md", AFTER)
    diff = diff_stats(discover(kb.roots, kb.exclude), kb.manifest.file_states())
    assert diff.changed == (KEY,)  # by stat alone: the write moved ctime
    assert kb.status().pending.changed == (KEY,)
    report = kb.index()
    assert report.updated == 1 and report.changed == [f"updated {KEY}"]
    texts = found_rooms(kb)
    assert any("room 202" in t for t in texts) and not any("room 101" in t for t in texts)
    assert kb.status().pending.changed == ()


def test_a_file_read_too_close_to_a_write_is_read_again(tmp_path, embedder):
    kb, vault = indexed_errands(tmp_path, embedder)
    assert kb.manifest.file_states()[KEY].recheck  # written moments before the sync: racily clean
    rewrite_keeping_mtime(vault / "Errands.md", AFTER)
    # A file system that keeps no ctime (FAT) or inode shows exactly the stat recorded: make the
    # manifest hold the new stat, as such a file system would show it, keeping the recheck mark.
    disk = discover(kb.roots, kb.exclude)[KEY]
    with kb.manifest.transaction() as db:
        kb.manifest.touch(db, {KEY: replace(kb.manifest.file_states()[KEY], ctime_ns=disk.ctime_ns, inode=disk.inode)})
    diff = diff_stats(discover(kb.roots, kb.exclude), kb.manifest.file_states())
    assert diff.changed == () and diff.recheck == (KEY, "vault/Other.md")  # both just written
    report = kb.index()
    assert report.updated == 1 and report.unchanged == 1 and any("room 202" in t for t in found_rooms(kb))


def test_racy_window_marks_only_recent_files():
    second = 1_000_000_000
    now = 1_700_000_000 * second
    old = SourceFile("vault", "a.md", Path("/x/a.md"), now - 60 * second, 10, now - 60 * second, 7)
    assert observed(old, "h", now) == FileState(old.mtime_ns, 10, "h", old.ctime_ns, 7, False)
    assert observed(replace(old, mtime_ns=now - second), "h", now).recheck  # edited a second ago
    assert observed(replace(old, ctime_ns=now - second), "h", now).recheck  # mtime put back, ctime not
    assert observed(replace(old, mtime_ns=now + 3600 * second), "h", now).recheck  # a clock ahead


def test_status_verify_finds_what_no_stat_shows_and_index_then_reads_it(tmp_path, embedder):
    kb, vault = indexed_errands(tmp_path, embedder)
    rewrite_keeping_mtime(vault / "Errands.md", AFTER)
    disk = discover(kb.roots, kb.exclude)[KEY]
    # As on FAT after the recheck window: the recorded stat is exactly the disk's, and not marked.
    with kb.manifest.transaction() as db:
        kb.manifest.touch(db, {KEY: replace(kb.manifest.file_states()[KEY], ctime_ns=disk.ctime_ns, inode=disk.inode,
                                            recheck=False)})
    other = kb.manifest.file_states()["vault/Other.md"]
    with kb.manifest.transaction() as db:
        kb.manifest.touch(db, {"vault/Other.md": replace(other, recheck=False)})
    assert kb.status().pending.changed == ()  # the stat check cannot see it
    assert kb.index().updated == 0
    status = kb.status(verify=True)
    assert status.verified and status.pending.changed == (KEY,) and status.unseen == (KEY,)
    assert kb.manifest.file_states()[KEY].recheck  # marked: the next sync reads it
    assert kb.index().updated == 1
    assert any("room 202" in t for t in found_rooms(kb)) and kb.status(verify=True).pending.changed == ()


def test_an_old_index_gains_the_stat_columns_and_re_embeds_nothing(tmp_path, embedder):
    import sqlite3
    kb, vault = indexed_errands(tmp_path, embedder)
    path = kb.manifest.path
    kb.close()
    with sqlite3.connect(path) as db:  # the files table as an older pai-kb wrote it
        for column in ("ctime_ns", "inode", "recheck"):
            db.execute(f"ALTER TABLE files DROP COLUMN {column}")
    again = make_kb(tmp_path, vault, embedder)
    embedder.embedded.clear()
    report = again.index()
    assert report.unchanged == 2 and report.updated == 0 and embedder.embedded == []
    assert again.manifest.file_states()[KEY].inode == (vault / "Errands.md").stat().st_ino

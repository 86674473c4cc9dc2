"""A full disk or a read-only index folder: one line naming the folder and what to do, the old index
still searchable, and nothing left behind that blocks the next run once space is back.

The index lives on a small tmpfs mounted for the test (mounting needs root, which CI and the
development machine have; elsewhere the tests skip, saying so)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROJECT, make_kb
from helpers import snapshot, to_schema_7
from pai_kb.errors import IndexWriteError


def mount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    point = tmp_path / "disk"
    point.mkdir()
    try:
        mount(point, "size=40m")
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount a test tmpfs here ({exc}); needs root")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True, capture_output=True)


def big_note(vault: Path, megabytes: int) -> None:
    words = " ".join(f"word{i} filler text about nothing in particular" for i in range(20))
    lines = [f"## Part {n}\n\n{words} {n}\n" for n in range(megabytes * 1024 * 1024 // (len(words) + 20))]
    (vault / "Big.md").write_text("# Big\n\n" + "\n".join(lines))


def test_a_full_disk_is_one_line_and_the_next_run_repairs(tmp_path, small_disk, embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    kb = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
    kb.index()
    before = snapshot(kb)
    assert kb.search("restic password", mode="keyword")[0].chunk.doc_key == "vault/Homelab/Backups.md"
    used = sum(p.stat().st_size for p in small_disk.rglob("*") if p.is_file())
    remount(small_disk, f"size={max(used * 2, 4 * 1024 * 1024)}")
    big_note(tmp_path / "vault", 6)
    with pytest.raises(IndexWriteError) as caught:
        kb.index()
    message = str(caught.value)
    assert "\n" not in message and str(small_disk / "index") in message and "the disk is full" in message
    assert snapshot(kb) == before  # the old index, untouched and searchable
    assert kb.search("restic password", mode="keyword")[0].chunk.doc_key == "vault/Homelab/Backups.md"
    remount(small_disk, "size=400m")
    kb.index()
    fresh = make_kb(tmp_path / "fresh", tmp_path / "vault", embedder, inbox=None)
    fresh.index()
    assert snapshot(kb) == snapshot(fresh)
    kb.close()
    fresh.close()


def test_a_full_disk_during_a_rebuild_frees_the_half_built_generation(tmp_path, small_disk, embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    big_note(tmp_path / "vault", 2)
    kb = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
    kb.index()
    used = sum(p.stat().st_size for p in small_disk.rglob("*") if p.is_file())
    remount(small_disk, f"size={int(used * 1.5)}")
    with pytest.raises(IndexWriteError, match="the disk is full"):
        kb.index(rebuild=True)
    assert sorted(p.name for p in (small_disk / "index").glob("gen-*")) == ["gen-1"]  # the half-built one is gone
    assert kb.search("restic password", mode="keyword")[0].chunk.doc_key == "vault/Homelab/Backups.md"
    kb.close()


def test_a_read_only_index_folder_is_one_line_and_still_searchable(tmp_path, small_disk, embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    kb = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
    kb.index()
    kb.close()
    (tmp_path / "vault" / "New.md").write_text("# New\nA note written while the index is read-only.\n")
    remount(small_disk, "ro")
    reader = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
    with pytest.raises(IndexWriteError, match="the folder is read-only") as caught:
        reader.index()
    assert str(small_disk / "index") in str(caught.value)
    assert reader.search("restic password", mode="keyword")[0].chunk.doc_key == "vault/Homelab/Backups.md"
    reader.close()
    remount(small_disk, "rw")


def test_a_read_only_index_of_the_previous_schema_still_answers_by_meaning(tmp_path, small_disk, embedder):
    """An index folder that cannot be written, built before schema 8 moved vectors out of the chunk rows:
    opened as it is (nothing created in it), it still answers dense searches from its chunks' column."""
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    kb = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
    kb.index()
    want = [(h.chunk.id, round(h.score, 6)) for h in kb.search("restic password", k=5, mode="dense")]
    path = kb.manifest.path
    kb.close()
    to_schema_7(path)
    remount(small_disk, "ro")
    try:
        reader = make_kb(tmp_path, tmp_path / "vault", embedder, index_dir=small_disk / "index", inbox=None)
        assert reader.manifest.vector_table == "chunks"
        assert [(h.chunk.id, round(h.score, 6)) for h in reader.search("restic password", k=5, mode="dense")] == want
        reader.close()
    finally:
        remount(small_disk, "rw")


from pathlib import Path

from pai_kb.manifest import FileState
from pai_kb.sources import SourceFile
from pai_kb.changes import diff_stats, make_plan


def src(key: str, mtime: int = 1, size: int = 10) -> SourceFile:
    root, path = key.split("/", 1)
    return SourceFile(root, path, Path("/x") / path, mtime, size)


def test_diff_by_stat_only():
    disk = {k: src(k) for k in ("vault/a.md", "vault/b.md", "vault/new.md")}
    disk["vault/b.md"] = src("vault/b.md", mtime=2)
    indexed = {"vault/a.md": FileState(1, 10, "ha"), "vault/b.md": FileState(1, 10, "hb"),
               "vault/gone.md": FileState(1, 10, "hg")}
    diff = diff_stats(disk, indexed)
    assert diff.new == ("vault/new.md",) and diff.changed == ("vault/b.md",)
    assert diff.deleted == ("vault/gone.md",) and diff.unchanged == 1


def test_plan_detects_move_touch_update():
    indexed = {"vault/old.md": FileState(1, 10, "H1"), "vault/t.md": FileState(1, 10, "HT"),
               "vault/u.md": FileState(1, 10, "HU"), "vault/d.md": FileState(1, 10, "HD")}
    disk = {k: src(k, mtime=2) for k in ("vault/moved/new.md", "vault/t.md", "vault/u.md", "vault/add.md")}
    diff = diff_stats(disk, indexed)
    hashes = {"vault/moved/new.md": "H1", "vault/t.md": "HT", "vault/u.md": "HU2", "vault/add.md": "HA"}
    plan = make_plan(diff, hashes, indexed)
    assert plan.move == (("vault/old.md", "vault/moved/new.md"),)
    assert plan.touch == ("vault/t.md",) and plan.update == ("vault/u.md",)
    assert plan.add == ("vault/add.md",) and plan.delete == ("vault/d.md",)


def test_two_copies_of_one_deleted_file_move_once():
    indexed = {"vault/a.md": FileState(1, 10, "H")}
    disk = {"vault/b.md": src("vault/b.md"), "vault/c.md": src("vault/c.md")}
    plan = make_plan(diff_stats(disk, indexed), {"vault/b.md": "H", "vault/c.md": "H"}, indexed)
    assert plan.move == (("vault/a.md", "vault/b.md"),) and plan.add == ("vault/c.md",) and plan.delete == ()


def test_empty_plan():
    indexed = {"vault/a.md": FileState(1, 10, "H")}
    plan = make_plan(diff_stats({"vault/a.md": src("vault/a.md")}, indexed), {}, indexed)
    assert plan.empty and plan.unchanged == 1

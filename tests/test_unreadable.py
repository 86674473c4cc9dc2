"""Everything pai-kb cannot read is said: once as a warning, and in `status`'s skipped list with its
reason; never counted as added, never listed as new forever, and every name printed is inert."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import PROJECT, make_kb
from pai_kb import render

AS_ROOT = os.geteuid() == 0
ROOT_READS_ANYTHING = "runs as root, and root reads mode-000 files and folders, so this case cannot happen"


def hostile_entries(vault, monkeypatch):
    """key -> what its reason must say. None of these may be opened: a FIFO blocks its reader."""
    os.mkfifo(vault / "pipe.md")
    monkeypatch.chdir(vault)  # a socket's path must be short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.md")
    sock.close()
    (vault / "loop-a.md").symlink_to(vault / "loop-b.md")
    (vault / "loop-b.md").symlink_to(vault / "loop-a.md")
    (vault / "dangling.md").symlink_to(vault / "nowhere.md")
    (vault / "linked").symlink_to(vault / "Notes", target_is_directory=True)
    return {"vault/pipe.md": "a FIFO", "vault/sock.md": "a socket", "vault/loop-a.md": "a symlink loop",
            "vault/loop-b.md": "a symlink loop", "vault/dangling.md": "a broken symlink",
            "vault/linked": "a symlinked folder"}


def small_vault(tmp_path):
    vault = tmp_path / "vault"
    (vault / "Notes").mkdir(parents=True)
    (vault / "Notes/fine.md").write_text("# Fine\n\nThe readable okapi note.\n")
    return vault


def test_fifos_sockets_loops_and_links_are_said_once_and_listed(tmp_path, embedder, monkeypatch):
    vault = small_vault(tmp_path)
    expected = hostile_entries(vault, monkeypatch)
    kb = make_kb(tmp_path, vault, embedder)
    report = kb.index()
    assert report.added == 1 and report.skipped == len(expected)
    for key, why in expected.items():
        said = [w for w in report.warnings if w.startswith(f"{key}:")]
        assert len(said) == 1 and why in said[0], (key, report.warnings)
    status = kb.status()
    for key, why in expected.items():
        assert why in status.errors[key], (key, status.errors.get(key))
    assert status.pending.new == () and status.pending.changed == ()
    again = kb.index()
    assert again.skipped == 0 and again.added == 0 and not [w for w in again.warnings if "vault/" in w]
    assert kb.search("okapi", k=1, mode="keyword")[0].chunk.path == "Notes/fine.md"


def test_a_fixed_entry_is_indexed_and_leaves_the_skipped_list(tmp_path, embedder, monkeypatch):
    vault = small_vault(tmp_path)
    hostile_entries(vault, monkeypatch)
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    (vault / "dangling.md").unlink()
    (vault / "dangling.md").symlink_to(vault / "Notes/fine.md")
    report = kb.index()
    assert report.updated == 1 and "vault/dangling.md" not in kb.status().errors


def test_names_printed_by_status_are_inert(tmp_path, embedder):
    vault = small_vault(tmp_path)
    os.mkfifo(vault / "evil\x1b]0;pwned\x07.md")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    text = render.status_text(kb.status())
    assert "evil\ufffd]0;pwned\ufffd.md" in text and "\x1b" not in text and "\x07" not in text


@pytest.mark.skipif(AS_ROOT, reason=ROOT_READS_ANYTHING)
def test_a_mode_000_file_is_skipped_not_added_and_not_new_forever(tmp_path, embedder):
    vault = small_vault(tmp_path)
    secret = vault / "Notes/secret.md"
    secret.write_text("# Secret\n\nThe hidden narwhal.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    assert kb.search("narwhal", k=1, mode="keyword")
    secret.chmod(0)
    report = kb.index()
    assert report.skipped == 1 and report.updated == 0 and kb.search("narwhal", k=1, mode="keyword") == []
    assert [w for w in report.warnings if "secret.md" in w] == ["vault/Notes/secret.md: cannot be read (Permission "
                                                                 "denied); check its permissions"]
    status = kb.status()
    assert "cannot be read" in status.errors["vault/Notes/secret.md"] and status.pending.new == ()
    assert kb.index().skipped == 0
    secret.chmod(0o644)  # moves ctime: read again
    assert kb.index().updated == 1 and kb.search("narwhal", k=1, mode="keyword")


@pytest.mark.skipif(AS_ROOT, reason=ROOT_READS_ANYTHING)
def test_a_mode_000_folder_is_said(tmp_path, embedder):
    vault = small_vault(tmp_path)
    (vault / "Private").mkdir()
    (vault / "Private/p.md").write_text("# P\n")
    (vault / "Private").chmod(0)
    try:
        kb = make_kb(tmp_path, vault, embedder)
        report = kb.index()
        assert any(w.startswith("vault/Private: folder cannot be listed") for w in report.warnings)
        assert "folder cannot be listed" in kb.status().errors["vault/Private"]
    finally:
        (vault / "Private").chmod(0o755)


@pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None,
                    reason="only as root (with setpriv), which then runs the mode-000 cases as an unprivileged user")
def test_mode_000_cases_as_an_unprivileged_user():
    """Root reads mode-000 files, so as root (as in CI) the two cases above run again under `nobody`."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    reach = subprocess.run([*nobody, sys.executable, "-c", f"open({str(PROJECT / 'tests' / 'conftest.py')!r}).read()"],
                           capture_output=True, timeout=60)
    if reach.returncode:
        pytest.skip("this checkout or its Python cannot be read by an unprivileged user here")
    base = Path(tempfile.mkdtemp(prefix="pai-kb-nobody-", dir="/tmp"))
    base.chmod(0o777)
    try:
        run = subprocess.run([*nobody, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={base / 'tmp'}", __file__,
                              "-k", "mode_000_file or mode_000_folder"],
                             capture_output=True, text=True, timeout=600, cwd=PROJECT,
                             env={**os.environ, "HOME": str(base), "PYTHONDONTWRITEBYTECODE": "1"})
        assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    finally:
        shutil.rmtree(base, ignore_errors=True)

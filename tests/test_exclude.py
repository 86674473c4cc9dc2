"""Exclude patterns follow .gitignore rules, a pattern that excludes nothing is said, and every place
that asks "would this be indexed" (the sync, the watcher, `get`) gives the same answer."""

import pytest

from conftest import make_kb
from pai_kb import render
from pai_kb.config import load_config
from pai_kb.errors import BadSetting, NoteNotFound
from pai_kb.sources import is_candidate, literal_pattern

FILES = ("Journal/day.md", "Journal/2024/old.md", "Projects/Journal/log.md", "Templates/t.md",
         "Templates/sub/deep.md", "Archive/a/b.md", "Notes/keep.md")


def make_vault(tmp_path):
    vault = tmp_path / "vault"
    for rel in FILES:
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        word = rel.split("/")[-1].removesuffix(".md")
        (vault / rel).write_text(f"# {word}\n\nThe private word is {word}zebra.\n")
    return vault


@pytest.mark.parametrize("pattern, left_out", [
    ("/Journal/*", {"Journal/day.md", "Journal/2024/old.md"}),  # anchored: not Projects/Journal
    ("/Journal/", {"Journal/day.md", "Journal/2024/old.md"}),
    ("Journal", {"Journal/day.md", "Journal/2024/old.md", "Projects/Journal/log.md"}),  # a bare name: any folder
    ("Journal/", {"Journal/day.md", "Journal/2024/old.md", "Projects/Journal/log.md"}),
    ("**/2024/*.md", {"Journal/2024/old.md"}),
    ("Templates/*", {"Templates/t.md", "Templates/sub/deep.md"}),  # what existing settings say keeps working
    ("Archive/**", {"Archive/a/b.md"}),
])
def test_patterns_follow_gitignore_rules(pattern, left_out):
    assert {rel for rel in FILES if not is_candidate(rel, (pattern,))} == left_out


def test_excluded_journal_is_neither_indexed_nor_served(tmp_path, embedder):
    vault = make_vault(tmp_path)
    kb = make_kb(tmp_path, vault, embedder, exclude=("/Journal/*",))
    report = kb.index()
    keys = set(kb.manifest.file_states())
    assert "vault/Journal/day.md" not in keys and "vault/Journal/2024/old.md" not in keys
    assert "vault/Projects/Journal/log.md" in keys
    assert kb.search("dayzebra", k=3, mode="keyword") == []
    with pytest.raises(NoteNotFound):
        kb.note("Journal/day.md", root="vault")
    assert not any("/Journal/*" in w for w in report.warnings)


def test_a_pattern_that_excludes_nothing_is_a_warning_and_status_counts_each(tmp_path, embedder):
    vault = make_vault(tmp_path)
    kb = make_kb(tmp_path, vault, embedder, exclude=("Journal/", "Jornal/", "*.tmp.md"))
    report = kb.index()
    unmatched = [w for w in report.warnings if w.startswith("exclude pattern")]
    assert len(unmatched) == 2 and '"Jornal/" excludes no file' in unmatched[0] and '"*.tmp.md"' in unmatched[1]
    status = render.status_dict(kb.status())
    assert status["exclude"] == [{"pattern": "Journal/", "files": 3}, {"pattern": "Jornal/", "files": 0},
                                 {"pattern": "*.tmp.md", "files": 0}, {"pattern": "/pai-kb/Answers/", "files": 0}]
    assert "Jornal/ (excludes no file)" in render.status_text(kb.status())


def test_the_answers_folder_is_excluded_literally(tmp_path):
    pattern = literal_pattern("pai-kb/Answers [old]")
    assert not is_candidate("pai-kb/Answers [old]/a.md", (pattern,))
    assert is_candidate("pai-kb/Answers o/a.md", (pattern,)) and is_candidate("x/pai-kb/Answers [old]/a.md", (pattern,))


def test_an_invalid_pattern_is_a_bad_setting_naming_it(tmp_path):
    (tmp_path / "pai-kb.toml").write_text('exclude = ["Journal/", "bad\\\\"]\n')
    with pytest.raises(BadSetting, match=r'exclude.*"bad\\" is not a valid .gitignore pattern'):
        load_config({"vault": tmp_path, "index_dir": tmp_path.parent / "ix"}, env={}, cwd=tmp_path)

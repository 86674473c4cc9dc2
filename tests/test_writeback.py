"""Obsidian write-back: materialised inbox items, the never-overwrite rule, one copy in search, --save."""

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import PROJECT, make_kb
from pai_kb.cli import main
from pai_kb.errors import PaiKbError
from pai_kb.loaders.markdown import load_markdown
from pai_kb.models import Block, Document
from pai_kb.writeback import clip_note, inside, safe_name


def test_clip_note_round_trips_through_the_loader():
    doc = Document("inbox", "post.html", "A post: on things", "webclip",
                   (Block("heading", "Intro", 1, 1, level=1), Block("paragraph", "Body text.", 2, 2),
                    Block("heading", "Details", 3, 3, level=2), Block("paragraph", "More.", 4, 4)),
                   tags=("web",), metadata={"author": "Ada"}, url="https://example.org/post")
    note = load_markdown(clip_note(doc, "inbox/post.html", "abc"), "vault", "Clippings/A post.md")
    assert note.title == "A post: on things" and note.url == "https://example.org/post"
    assert note.metadata["pai-kb-source"] == "inbox/post.html" and note.metadata["author"] == "Ada"
    assert [b.text for b in note.blocks if b.kind == "heading"] == ["Intro", "Details"]
    assert set(note.tags) == {"web", "clippings"}


def test_transcript_note_has_timestamped_sections():
    cues = tuple(Block("cue", f"sentence {i}", i + 1, i + 1, start_s=i * 25.0, end_s=i * 25.0 + 25) for i in range(6))
    doc = Document("inbox", "talk.vtt", "Talk", "transcript", cues, url="https://www.youtube.com/watch?v=abc")
    text = clip_note(doc, "inbox/talk.vtt", "h")
    assert "## [00:00:00](https://www.youtube.com/watch?v=abc&t=0s)" in text
    assert "## [00:01:15](https://www.youtube.com/watch?v=abc&t=75s)" in text
    assert "sentence 0 sentence 1 sentence 2" in text


def test_safe_names_and_folder_guard(tmp_path):
    assert safe_name("../../etc/passwd") == "etc passwd" and safe_name("a/b:c*?") == "a b c"
    assert safe_name("...") == "Untitled"
    with pytest.raises(PaiKbError, match="outside the designated folder"):
        inside(tmp_path / "Clippings", tmp_path / "Clippings" / ".." / "Home.md")


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def setup(tmp_path, embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    shutil.copytree(PROJECT / "ingest", tmp_path / "inbox")
    kb = make_kb(tmp_path, tmp_path / "vault", embedder, inbox=tmp_path / "inbox")
    kb.index()
    return kb, tmp_path / "vault", tmp_path / "inbox"


def test_materialize_never_overwrites_edits_and_writes_only_its_folders(setup):
    kb, vault, inbox = setup
    before = files_under(vault)
    inbox_before = files_under(inbox)
    first = {w.source: w for w in kb.materialize()}
    assert {w.action for w in first.values()} == {"created"}
    assert first["inbox/Cast iron care.html"].path == "Clippings/How to care for a cast iron pan.md"
    assert first["inbox/Spaced repetition talk.vtt"].path.startswith("Transcripts/")
    after = files_under(vault)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed and all(p.startswith(("Clippings/", "Transcripts/")) for p in changed)
    assert files_under(inbox) == inbox_before  # originals stay where they were
    assert {w.action for w in kb.materialize()} == {"unchanged"}

    clip = inbox / "Cast iron care.html"
    clip.write_text(clip.read_text().replace("three times", "four times"))
    kb.index()
    updated = {w.source: w for w in kb.materialize()}["inbox/Cast iron care.html"]
    assert updated.action == "updated" and "four times" in (vault / updated.path).read_text()

    note = vault / updated.path
    note.write_text(note.read_text() + "\nMy own remark: use lard.\n")
    clip.write_text(clip.read_text().replace("four times", "five times"))
    kb.index()
    again = {w.source: w for w in kb.materialize()}["inbox/Cast iron care.html"]
    assert again.action == "new-version" and again.path == "Clippings/How to care for a cast iron pan (2).md"
    assert "My own remark: use lard." in note.read_text() and "five times" in (vault / again.path).read_text()


def test_search_returns_one_copy_of_materialised_material(setup):
    kb, vault, inbox = setup
    kb.materialize()
    kb.index()
    hits = kb.search("flaxseed oil bake upside down seasoning", k=10, mode="keyword")
    docs = [h.chunk.doc_key for h in hits]
    assert docs and len({d for d in docs if "cast iron" in d.lower()}) == 1
    transcript = kb.search("forgetting curve review", k=10, mode="keyword")
    copies = {h.chunk.doc_key for h in transcript if "spaced" in h.chunk.path.lower()}
    assert len(copies) == 1 and kb.manifest.copy_groups(["vault/Transcripts/Spaced repetition talk.md"]) == {
        "vault/Transcripts/Spaced repetition talk.md": "inbox/Spaced repetition talk.vtt"}


def test_ask_save_writes_a_note_the_loader_reads_back(tmp_path, real_embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    kb = make_kb(tmp_path, vault, real_embedder, inbox=inbox)
    kb.index()
    args = ["--vault", str(vault), "--inbox", str(inbox), "--index", str(kb.config.index_dir)]
    result = CliRunner().invoke(main, [*args, "ask", "how long should a pour-over brew take?", "--no-llm", "--save"])
    assert result.exit_code == 0, result.output
    saved = Path(result.stderr.strip().removeprefix("saved to "))
    assert saved.parent == vault / "pai-kb" / "Answers"
    doc = load_markdown(saved.read_text(), "vault", saved.relative_to(vault).as_posix())
    assert doc.metadata["question"] == "how long should a pour-over brew take?"
    assert any(link.startswith("Coffee/Pour-over brewing") for link in doc.links)
    assert any("#" in link for link in saved.read_text().split("[[")[1:])  # headings as [[Note#Heading]]
    report = kb.index()
    assert "vault/pai-kb/Answers/" not in " ".join(kb.manifest.file_states())  # answers are not re-indexed
    assert report.added == 0
    second = CliRunner().invoke(main, [*args, "ask", "how long should a pour-over brew take?", "--no-llm", "--save"])
    assert Path(second.stderr.strip().removeprefix("saved to ")) != saved and saved.exists()


def test_materialize_command(setup):
    kb, vault, inbox = setup
    args = ["--vault", str(vault), "--inbox", str(inbox), "--index", str(kb.config.index_dir)]
    out = CliRunner().invoke(main, [*args, "materialize"])
    assert out.exit_code == 0 and "created      Clippings/How to care for a cast iron pan.md" in out.stdout
    assert os.path.isfile(vault / "Clippings" / "Vector search with HNSW graphs.md")


def test_abstained_answers_are_not_saved(tmp_path, real_embedder):
    shutil.copytree(PROJECT / "vault", tmp_path / "vault")
    vault = tmp_path / "vault"
    kb = make_kb(tmp_path, vault, real_embedder)
    kb.index()
    args = ["--vault", str(vault), "--inbox", str(tmp_path / "inbox"), "--index", str(kb.config.index_dir)]
    result = CliRunner().invoke(main, [*args, "ask", "who painted the Mona Lisa?", "--save"])
    assert result.exit_code == 0 and result.stdout.startswith("Your notes don't hold anything on this.")
    assert "not saved: your notes do not cover this" in result.stderr
    assert not (vault / "pai-kb").exists()


def test_saved_sources_keep_the_numbers_the_answer_cites():
    from pai_kb.answer import Answer, Source
    from pai_kb.models import Chunk
    from pai_kb.writeback import answer_note

    def source(n, path):
        chunk = Chunk(id=f"c{n}", doc_key=f"vault/{path}", ordinal=0, title=path, heading=f"{path} > Part", text="t",
                      embed_text="", line_start=n, line_end=n + 1)
        return Source(n, (chunk,), "t")

    sources = [source(n, f"N{n}.md") for n in (1, 2, 7)]
    note = answer_note(Answer("q?", "A [1] B [7].", sources, cited=[1, 7]))
    listed = note.split("## Sources\n\n")[1].strip().splitlines()
    assert listed == ["- [1] [[N1#Part]] (lines 1-2)", "- [7] [[N7#Part]] (lines 7-8)"]

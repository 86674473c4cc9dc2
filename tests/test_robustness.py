"""Bad input generated on the spot, property-based tests of the loaders and chunker, and searches
running while an index run writes."""

import os
import threading

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import DATA, HashEmbedder, make_kb, needs_shared
from helpers import snapshot
from pai_kb.chunking import chunk_document
from pai_kb.errors import SourceError
from pai_kb.loaders import load_bytes

WEIRD_NAMES = ["with space.md", "new\nline.md", "emoji 🧠 note.md", "-leading-dash.md", "--double.md"]


def test_bad_input_corpus_indexes_what_it_can(tmp_path, vault, embedder):
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    before = snapshot(kb)
    bad = vault / "bad"
    bad.mkdir()
    with (bad / "huge.md").open("wb") as handle:  # 100 MB, sparse: over the size cap
        handle.truncate(100 * 1024 * 1024)
    (bad / "nul.md").write_bytes(b"text\x00with\x00nuls")
    (bad / "utf16.md").write_bytes("# Unicode\n\nÜberraschung in UTF-16".encode("utf-16"))
    (bad / "empty.md").write_bytes(b"")
    (bad / "nested.md").write_text("\n".join("  " * i + "- level" for i in range(10_000)))
    (bad / "oneline.md").write_text("word " * 200_000)
    (bad / "fence.md").write_text("# Open fence\n\n```python\nprint('never closed')\n")
    (bad / "front.md").write_text("---\ntitle: never closed\n\nbody after broken frontmatter zanzibar\n")
    (bad / "bomb.md").write_text("---\na: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b]\n---\nbody of the bomb note\n")
    for name in WEIRD_NAMES:
        (bad / name).write_text(f"# Weird\n\nname test {name.encode('unicode_escape').decode()}\n")
    os.mkfifo(bad / "fifo.md")  # must never block the run
    (bad / "loop").symlink_to(bad, target_is_directory=True)
    (bad / "escape.md").symlink_to("/etc/hostname")
    unreadable = bad / "secret.md"
    unreadable.write_text("# Secret\n")
    unreadable.chmod(0)
    report = kb.index()
    warnings = "\n".join(report.warnings)
    assert "bad/huge.md: 104.9 MB is over the 10 MB limit" in warnings and "bad/nul.md: looks binary" in warnings
    assert "frontmatter uses YAML aliases" in warnings and "no closing '---'" in warnings
    keys = set(kb.manifest.file_states())
    for name in ["utf16.md", "empty.md", "nested.md", "oneline.md", "fence.md", "front.md", "bomb.md", *WEIRD_NAMES]:
        assert f"vault/bad/{name}" in keys, name
    skipped = {"vault/bad/fifo.md", "vault/bad/escape.md", "vault/bad/loop"}
    assert skipped <= set(kb.manifest.file_errors()) and not any("/loop/" in k for k in keys)
    assert not skipped & {c.doc_key for c in kb.manifest.all_chunks()}
    if os.geteuid() != 0:  # root reads mode-000 files, so only an ordinary user can see this case
        assert "secret.md: cannot be read" in warnings
    assert before <= snapshot(kb)
    assert kb.search("Überraschung", k=1, mode="keyword")[0].chunk.path == "bad/utf16.md"
    assert kb.search("zanzibar", k=1, mode="keyword")[0].chunk.path == "bad/front.md"
    rows = [(c.path, c.line_start, c.line_end) for c in kb.manifest.all_chunks() if c.doc_key.startswith("vault/bad/")]
    assert rows
    for key, start, end in rows:
        path = vault / key
        lines = path.read_text(encoding="utf-8", errors="replace").count("\n") + 1
        assert 1 <= start <= end <= lines, key


def test_file_deleted_between_listing_and_reading(tmp_path, vault, embedder):
    from pai_kb.sources import discover
    from pai_kb.sync import SyncReport, Syncer
    kb = make_kb(tmp_path, vault, embedder)
    disk = discover(kb.roots)
    (vault / "Home.md").unlink()
    report = SyncReport()
    data, hashes = Syncer(kb.config, kb.manifest, lambda: kb.store, embedder).read(disk, ["vault/Home.md"], report)
    assert data == {} and "vault/Home.md: deleted while indexing" in report.warnings[0]


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
MARKDOWNISH = st.lists(st.sampled_from(["# H", "## Sub", "```", "~~~", "---", "> [!note] x", "| a | b |",
                                        "- item", "  - nested", "%%", "[[Link|alias]]", "#tag", "", "text line",
                                        "title: x", "^block", "<div>", "\t", "\\|"]) | TEXT, max_size=40)


def _counter(texts):
    return [len(t.split()) + len(t) // 50 for t in texts]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=MARKDOWNISH, suffix=st.sampled_from([".md", ".vtt", ".srt", ".txt", ".html", ".json"]))
def test_loaders_and_chunker_never_crash(parts, suffix):
    data = "\n".join(parts).encode("utf-8", "surrogatepass")
    try:
        doc = load_bytes(data, "inbox", f"note{suffix}")
    except SourceError:
        return
    lines = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
    for block in doc.blocks:
        if suffix not in (".html", ".json"):
            assert 1 <= block.line_start <= block.line_end <= lines
    for chunk in chunk_document(doc, _counter, 40, 8, 60):
        assert _counter([chunk.embed_text])[0] <= 60 or len(chunk.text.split()) <= 1
        if suffix not in (".html", ".json"):
            assert 1 <= chunk.line_start <= chunk.line_end <= lines


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".md", ".vtt", ".pdf", ".html", ".txt"]))
@example(data=b">", suffix=".md")  # an empty quote once left a block without words
def test_arbitrary_bytes_give_a_document_or_a_source_error(data, suffix):
    try:
        doc = load_bytes(data, "vault", f"x{suffix}")
    except SourceError as exc:
        assert str(exc).startswith(f"vault/x{suffix}: "), str(exc)  # the error names the file
        return
    assert doc.key == f"vault/x{suffix}" and doc.title
    for block in doc.blocks:
        assert (block.text.strip() or block.kind == "heading") and 1 <= block.line_start <= block.line_end


def test_searches_during_an_index_run_never_see_half_a_note(tmp_path, vault):
    """Every chunk of a note is replaced in one transaction, so a reader sees one version of it."""
    note = vault / "versions.md"
    kb = make_kb(tmp_path, vault, HashEmbedder())

    def write(version: int) -> None:
        note.write_text("\n\n".join(f"## Part {i}\n\nversion{version} marker part {i} " + "filler " * 120
                                    for i in range(6)))
    write(0)
    kb.index()
    done = threading.Event()
    seen: list[set[str]] = []

    def searcher() -> None:
        reader = make_kb(tmp_path, vault, HashEmbedder())
        while not done.is_set():
            hits = reader.search("marker", k=50, mode="keyword")
            seen.append({w for h in hits if h.chunk.path == "versions.md" for w in h.chunk.text.split() if w.startswith("version")})

    thread = threading.Thread(target=searcher)
    thread.start()
    for version in range(1, 15):
        write(version)
        os.utime(note, ns=(version * 10**9, version * 10**9))
        kb.index()
    done.set()
    thread.join()
    assert len(seen) > 10 and all(len(versions) <= 1 for versions in seen)


@needs_shared()
def test_obsidian_hub_indexes_completely(tmp_path, embedder):
    """6,571 real community notes: emoji names, block ids, comments, empty tag items, 309 KB index notes,
    and 15 notes whose YAML does not parse. Every one must be indexed."""
    hub = DATA / "obsidian-hub"
    kb = make_kb(tmp_path, hub, embedder)
    report = kb.index()
    notes = {f"vault/{p.relative_to(hub).as_posix()}" for p in hub.rglob("*.md")}
    assert len(notes) == 6571 and notes <= set(kb.manifest.file_states())
    assert report.skipped == 0 and kb.manifest.file_errors() == {}
    broken = [w for w in report.warnings if "frontmatter is not valid YAML" in w]
    assert len(broken) == 15
    assert kb.manifest.counts()[1] > 30_000

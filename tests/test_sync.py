"""Incremental sync against a real Chroma store in a temp dir."""

import os
import shutil
import time

import pytest

from helpers import snapshot
from conftest import HashEmbedder
from pai_kb.kb import KnowledgeBase
from pai_kb.errors import ConfigError, IndexLockedError
from pai_kb.locking import writer_lock


def fresh_snapshot(mk, tmp_path, vault, name="fresh"):
    kb = mk(tmp_path / name, vault, HashEmbedder())
    kb.index()
    return snapshot(kb)


def test_full_index_of_sample_vault(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder)
    report = kb.index()
    notes = [p for p in vault.rglob("*.md") if ".obsidian" not in p.parts and "Templates" not in p.parts]
    assert report.added == len(notes) and report.chunks_total == report.chunks_embedded > len(notes)
    snap = snapshot(kb)
    assert {k for k, _, _ in snap} == {f"vault/{p.relative_to(vault).as_posix()}" for p in notes}
    assert any("not valid YAML" in w for w in report.warnings)


def test_noop_reindex_reads_nothing_and_never_opens_the_store(mk, tmp_path, vault, embedder):
    mk(tmp_path, vault, embedder).index()
    kb = mk(tmp_path, vault, embedder)
    embedder.embedded.clear()
    report = kb.index()
    assert report.unchanged == 17 and report.chunks_total > 17
    assert embedder.embedded == [] and not kb.store_is_open


def test_edit_delete_rename_add_embed_only_what_changed(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder)
    kb.index()
    embedder.embedded.clear()
    pour = vault / "Coffee/Pour-over brewing.md"
    pour.write_text(pour.read_text().replace("Grind coarser.", "Grind coarser, zorbleflux."))
    (vault / "Running plan.md").unlink()
    (vault / "Programming/SQLite tips.md").rename(vault / "Programming/Databases - SQLite.md")
    (vault / "Homelab/Backups.md").rename(vault / "Backups.md")
    (vault / "New idea.md").write_text("# New idea\n\nA brand new thought about quasars.\n")
    report = kb.index()
    assert (report.added, report.updated, report.moved, report.removed) == (1, 1, 2, 1)
    # Only the edited section and the new note reached the model.
    assert len(embedder.embedded) == 2
    assert any("zorbleflux" in t for t in embedder.embedded) and any("quasars" in t for t in embedder.embedded)
    assert snapshot(kb) == fresh_snapshot(mk, tmp_path, vault)
    hits = kb.search("zorbleflux", k=3, mode="keyword")
    assert hits[0].chunk.path == "Coffee/Pour-over brewing.md"
    running = kb.search("half marathon", k=10)
    assert running and all(h.chunk.path != "Running plan.md" for h in running)
    renamed = kb.search("WAL journal_mode", k=1, mode="keyword")[0].chunk
    assert renamed.path == "Programming/Databases - SQLite.md" and renamed.title == "Databases - SQLite"


def test_touch_without_change_embeds_nothing(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder)
    kb.index()
    embedder.embedded.clear()
    note = vault / "Home.md"
    os.utime(note, (time.time() + 5, time.time() + 5))
    report = kb.index()
    assert embedder.embedded == [] and report.updated == 0
    assert kb.index().unchanged == report.unchanged  # and the new mtime was recorded


def test_bad_inputs_never_abort_or_damage(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder, max_file_bytes=200_000)
    kb.index()
    before = snapshot(kb)
    (vault / "empty.md").write_bytes(b"")
    (vault / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (vault / "latin1.md").write_bytes("# Café\n\nUn café crème, s'il vous plaît.".encode("latin-1"))
    (vault / "huge.md").write_bytes(b"word " * 100_000)
    (vault / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    (vault / "loop").symlink_to(vault, target_is_directory=True)
    (vault / "outside.md").symlink_to(shutil.copy(vault / "Home.md", tmp_path / "outside-secret.md"))
    report = kb.index()
    assert report.added == 2 and report.skipped == 5
    text = "\n".join(report.warnings)
    assert "binary.md: looks binary" in text and "latin1.md: invalid UTF-8" in text and "huge.md: 0.5 MB" in text
    after = snapshot(kb)
    assert before <= after
    keys = {k for k, _, _ in after}
    assert "vault/latin1.md" in keys and "vault/outside.md" not in keys and not any("loop/" in k for k in keys)
    embedder.embedded.clear()
    assert kb.index().skipped == 0 and embedder.embedded == []  # skipped files are not retried forever
    assert "vault/binary.md" in kb.status().errors


def test_missing_vault_is_a_clear_error(mk, tmp_path, embedder):
    kb = mk(tmp_path, tmp_path / "no-such-vault", embedder)
    with pytest.raises(ConfigError, match="no-such-vault does not exist"):
        kb.index()


def test_other_model_builds_a_new_generation_and_searches_keep_the_old_one_meanwhile(mk, tmp_path, vault, embedder):
    mk(tmp_path, vault, embedder).index()
    other = HashEmbedder()
    other.model_id = "another-model"
    before = KnowledgeBase(mk(tmp_path, vault, other).config, other, query_encoder=embedder)  # the old one's model
    old_top = before.search("pour-over coffee", k=1, mode="dense")[0].chunk.id
    assert not before.status().fingerprint_ok
    report = mk(tmp_path, vault, other).index()  # no --rebuild: the settings changed, so a new generation
    assert report.chunks_embedded == report.chunks_total > 0 and len(other.embedded) == report.chunks_total
    after = mk(tmp_path, vault, other)
    assert after.generation.name == "gen-2" and after.manifest.get_meta("model") == "another-model"
    assert after.status().fingerprint_ok and after.search("pour-over coffee", k=1)[0].chunk.id == old_top


def test_second_writer_is_refused(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder)
    with writer_lock(tmp_path / "index"):
        with pytest.raises(IndexLockedError, match="being written by pid"):
            kb.index()
    kb.index()


@pytest.fixture
def server_mk(chroma_server):
    """make_kb against the real Chroma server: the only backend with a second store to keep in step
    (the embedded backend keeps vectors in the manifest rows themselves)."""
    from conftest import make_kb

    def factory(tmp_path, vault, embedder, **changes):
        return make_kb(tmp_path, vault, embedder, chroma_url=chroma_server, **changes)

    return factory


def test_orphan_journal_is_repaired(server_mk, tmp_path, vault, embedder):
    """A run killed after storing vectors but before committing the manifest leaves journalled
    orphans; the next run deletes them."""
    mk = server_mk
    kb = mk(tmp_path, vault, embedder)
    kb.index()
    with kb.manifest.transaction() as db:
        kb.manifest.add_orphans(db, ["stray-1", "stray-2"])
    kb.store.upsert(["stray-1", "stray-2"], [[1.0] + [0.0] * 63] * 2, [{"doc_key": "x"}] * 2)
    report = mk(tmp_path, vault, embedder).index()
    assert report.repaired == 2
    assert snapshot(kb) == fresh_snapshot(mk, tmp_path, vault)


def test_lost_vectors_after_crash_are_rebuilt(server_mk, tmp_path, vault, embedder):
    mk = server_mk
    kb = mk(tmp_path, vault, embedder)
    kb.index()
    victim = kb.manifest.chunk_ids("vault/Home.md")
    kb.store.delete(victim[:1])
    kb.store.upsert(["stray"], [[1.0] + [0.0] * 63], [{"doc_key": "x"}])
    kb.manifest.set_meta("dirty", "1")  # what an interrupted run leaves behind
    embedder.embedded.clear()
    report = mk(tmp_path, vault, embedder).index()
    assert report.repaired == 2 and report.added == 1
    assert snapshot(kb) == fresh_snapshot(mk, tmp_path, vault)


def test_unreachable_chroma_server_is_clear(tmp_path, vault, embedder):
    from conftest import make_kb
    kb = make_kb(tmp_path, vault, embedder, chroma_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot reach the Chroma server at http://127.0.0.1:9: start it"):
        kb.index()


def test_pruning_a_generation_drops_its_collection_on_the_server(server_mk, chroma_server, tmp_path, vault,
                                                                  embedder):
    import chromadb

    from pai_kb.store import collection_name

    server = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    kb = server_mk(tmp_path, vault, embedder)
    kb.index()
    first = kb.generations.current.path
    kb.index(rebuild=True)
    kb.index(rebuild=True)  # the first generation is now older than the previous one: pruned
    names = {c.name for c in server.list_collections()}
    assert not first.exists() and collection_name(first) not in names
    assert collection_name(kb.generations.current.path) in names
    assert server.get_collection(collection_name(kb.generations.current.path)).count() == kb.manifest.counts()[1]

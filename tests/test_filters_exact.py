"""Filters are exact: no character a person types is a wildcard, except a path glob's own `*`, `?`, `[...]`.

A real vault in tmp, indexed, searched in keyword and dense mode (filters apply to both arms)."""

from pathlib import Path

import numpy as np
import pytest

from conftest import make_kb
from pai_kb.errors import InvalidRequest
from pai_kb.kb import KnowledgeBase
from pai_kb.models import Filters

NOTES = {
    "reading/list.md": ["to_read"],
    "reading/later.md": ["to_read/later"],
    "reading/decoy.md": ["toXread/sub"],
    "reading/decoy2.md": ["toXread"],
    "deals/50%_off.md": ["100%"],
    "deals/50xyoff.md": ["100x"],
    "work/plan.md": ["project"],
    "work/sub.md": ["project/alpha"],
    "work/projector.md": ["projector"],
    "work/Shouty.md": ["Coffee"],
    "work/umlaut.md": ["Ärger"],
    "notes2024/a.md": [],
    "notes2025/b.md": [],
    "notesX/c.md": [],
}


@pytest.fixture
def kb(tmp_path: Path, embedder: object) -> KnowledgeBase:
    vault = tmp_path / "vault"
    for name, tags in NOTES.items():
        (vault / name).parent.mkdir(parents=True, exist_ok=True)
        front = f"---\ntags: [{', '.join(repr(t) for t in tags)}]\n---\n" if tags else ""
        (vault / name).write_text(f"{front}# Shared words\n\nEvery note says lantern here: {name}.\n",
                                  encoding="utf-8")  # texts differ: search returns a repeated passage once
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    return kb


def found(kb: KnowledgeBase, mode: str = "keyword", tags: tuple[str, ...] = (), path: str | None = None) -> set[str]:
    hits = kb.search("lantern shared words", k=50, mode=mode, filters=Filters.of(tags=tags, path=path))
    return {h.chunk.path for h in hits}


@pytest.mark.parametrize("mode", ["keyword", "dense"])
def test_a_tag_matches_itself_and_its_nested_tags_only(kb, mode):
    assert found(kb, mode) == set(NOTES)  # without a filter every note is found: the filters decide below
    assert found(kb, mode, ("to_read",)) == {"reading/list.md", "reading/later.md"}  # `_` is no wildcard
    assert found(kb, mode, ("100%",)) == {"deals/50%_off.md"}  # nor is `%`
    assert found(kb, mode, ("project",)) == {"work/plan.md", "work/sub.md"}  # not `projector`
    assert found(kb, mode, ("project/alpha",)) == {"work/sub.md"}


def test_a_tag_is_written_as_in_obsidian(kb):
    assert found(kb, tags=("project/",)) == found(kb, tags=("project",)) == found(kb, tags=("#project",))
    assert Filters.of(tags=["#project/", "project"]).tags == ("project",)
    with pytest.raises(InvalidRequest, match="names no tag"):
        Filters.of(tags=["#"])


def test_tags_are_case_insensitive_for_ascii_letters(kb):
    assert found(kb, tags=("coffee",)) == found(kb, tags=("COFFEE",)) == {"work/Shouty.md"}
    assert found(kb, tags=("Ärger",)) == {"work/umlaut.md"}  # a tag as written always matches itself
    assert found(kb, tags=("ärger",)) == set()  # SQLite's lower() folds ASCII letters only


@pytest.mark.parametrize("mode", ["keyword", "dense"])
def test_a_path_glob_keeps_its_own_wildcards_only(kb, mode):
    assert found(kb, mode, path="deals/50%_off*") == {"deals/50%_off.md"}  # `%` and `_` are literal
    assert found(kb, mode, path="notes202?/*") == {"notes2024/a.md", "notes2025/b.md"}
    assert found(kb, mode, path="notes202[4]/*") == {"notes2024/a.md"}
    assert found(kb, mode, path="work/*") == {"work/plan.md", "work/sub.md", "work/projector.md",
                                              "work/Shouty.md", "work/umlaut.md"}


def test_an_unclosed_bracket_in_a_path_glob_is_refused():
    with pytest.raises(InvalidRequest, match=r"path glob 'notes\[2024/\*'.*\[\[\]"):
        Filters.of(path="notes[2024/*")
    assert Filters.of(path="notes[[]2024/*").path == "notes[[]2024/*"


WORDS = ("lantern", "harbour", "orchard", "glacier", "meadow", "compass", "ember", "willow", "quarry", "delta")


@pytest.mark.parametrize("path, share", [("wide/**", 0.95), ("narrow/**", 0.05)])
def test_a_filtered_dense_search_is_the_exact_search_among_the_allowed_chunks(tmp_path, embedder, path, share):
    """Past 400 chunks a filtered dense search first looks deeper without the filter and keeps what the
    filter allows; a filter allowing too few of those (here 5% of the chunks) searches among its allowed
    ids instead. Either way the answer is the exact ranking of every allowed chunk by cosine."""
    vault = tmp_path / "vault"
    for n in range(600):
        folder = "narrow" if n % 20 == 0 else "wide"
        words = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(1, 8))
        (vault / folder / f"n{n:03d}.md").parent.mkdir(parents=True, exist_ok=True)
        (vault / folder / f"n{n:03d}.md").write_text(f"# Note {n}\n\n{words} number{n}\n")
    kb = make_kb(tmp_path, vault, embedder, inbox=None)
    kb.index()
    assert kb.manifest.counts()[1] == 600
    filters = Filters.of(path=path)
    allowed = kb.manifest.filtered_ids(filters)
    assert len(allowed) == 600 * share
    for query in ("lantern harbour", "glacier ember willow", "number37 quarry"):
        vector = np.asarray(kb.query_embedder.embed([query])[0])
        vectors = kb.manifest.vectors(allowed)
        exact = sorted((round(float(np.asarray(vectors[i]) @ vector), 5) for i in allowed), reverse=True)[:10]
        hits = kb.search(query, k=10, mode="dense", filters=filters)
        assert {h.chunk.id for h in hits} <= set(allowed)
        assert [round(h.similarity, 5) for h in hits] == exact  # the best ten similarities (texts may tie)
    kb.close()

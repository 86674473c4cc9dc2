"""Fusion, selection, keyword queries and filters, with literal inputs and a real manifest."""

import pytest

from pai_kb.keyword import plan, terms
from pai_kb.models import Filters
from pai_kb.models import Chunk
from pai_kb.search import rrf, select


def chunk(cid: str, doc: str = "vault/a.md", start: int = 1, end: int = 1) -> Chunk:
    return Chunk(id=cid, doc_key=doc, ordinal=0, title="t", heading="t", text=cid, embed_text=cid,
                 line_start=start, line_end=end)


def test_rrf_rewards_agreement():
    fused = rrf([["a", "b", "c"], ["c", "b", "d"]], k=60)
    assert [i for i, _ in fused] == ["c", "b", "a", "d"]  # 1/61 + 1/63 > 2/62 > 1/61 > 1/63
    assert abs(dict(fused)["b"] - 2 / 62) < 1e-12 and abs(dict(fused)["c"] - (1 / 61 + 1 / 63)) < 1e-12


def test_rrf_single_ranking_keeps_order():
    assert [i for i, _ in rrf([["x", "y", "z"]])] == ["x", "y", "z"]


def test_select_drops_overlapping_chunks_and_caps_per_note():
    ranked = [(chunk("a1", start=1, end=10), 0.9), (chunk("a2", start=8, end=20), 0.8),
              (chunk("a3", start=21, end=30), 0.7), (chunk("b1", doc="vault/b.md", start=1, end=5), 0.6),
              (chunk("a4", start=31, end=40), 0.5)]
    assert [h.chunk.id for h in select(ranked, 10)] == ["a1", "a3", "b1", "a4"]
    assert [h.chunk.id for h in select(ranked, 10, per_note=1)] == ["a1", "b1"]
    assert [(h.chunk.id, h.rank) for h in select(ranked, 2)] == [("a1", 1), ("a3", 2)]


def test_select_returns_one_copy_of_duplicated_material():
    ranked = [(chunk("v", doc="vault/Clippings/post.md", start=1, end=3), 0.9),
              (chunk("i", doc="inbox/post.md", start=5, end=7), 0.8), (chunk("other"), 0.7)]
    ranked[1] = (Chunk(**{**vars(ranked[1][0]), "text": " v\n"}), 0.8)  # the same words, other spacing
    assert [h.chunk.id for h in select(ranked, 10)] == ["v", "other"]


def fts_query(text: str) -> str | None:
    words = terms(text)
    return plan(words, dict.fromkeys(words, 1), rows=100) if words else None


def test_fts_query_quotes_terms_and_drops_function_words():
    assert fts_query("how do I use --sliding-window?") == '"use" OR "sliding" OR "window"'
    assert fts_query("what is it") == '"what" OR "is" OR "it"'  # only function words: keep them
    assert fts_query('AND "OR" NEAR(') == '"NEAR"'  # operators are words, never syntax
    assert fts_query('"OR"') == '"OR"'
    assert fts_query("?!") is None


def test_plan_is_the_plain_query_while_the_words_rows_fit_the_budget():
    words = ["espresso", "grind", "dose"]
    assert plan(words, {"espresso": 40, "grind": 30, "dose": 20}, rows=1000, budget=100) == \
        '"espresso" OR "grind" OR "dose"'


def test_plan_drops_words_in_half_the_rows_or_more():
    """FTS5 gives such a word an IDF of 1e-6: dropping it cannot change the order."""
    df = {"note": 500, "espresso": 40, "grind": 30}
    assert plan(["note", "espresso", "grind"], df, rows=1000) == '"espresso" OR "grind"'
    assert plan(["note"], {"note": 900}, rows=1000) == '"note"'  # nothing else left: kept


def test_plan_requires_common_words_together_past_the_budget():
    df = {"home": 300, "network": 250, "vlan": 20, "iot": 60, "devices": 280}
    words = list(df)
    assert plan(words, df, rows=1000, budget=100) == '"vlan" OR "iot" OR ("home" AND "network" AND "devices")'
    only_common = {"home": 300, "network": 250, "devices": 280}
    assert plan(list(only_common), only_common, rows=1000, budget=100) == '("home" AND "network" AND "devices")'
    one_common = {"vlan": 20, "iot": 60, "home": 300}
    assert plan(list(one_common), one_common, rows=1000, budget=100) == '"vlan" OR "iot"'  # alone it is unbounded


def test_filters_apply_to_keyword_and_dense(mk, tmp_path, vault, embedder):
    kb = mk(tmp_path, vault, embedder)
    kb.index()
    def paths(mode, **f):
        return {h.chunk.path for h in kb.search("coffee grind network backup", k=50, mode=mode, filters=Filters(**f))}
    for mode in ("keyword", "dense", "hybrid"):
        assert paths(mode, tags=("coffee",)) == {"Coffee/Pour-over brewing.md", "Coffee/Espresso dialing in.md"}
        assert paths(mode, tags=("backup",)) == {"Homelab/Backups.md", "Daily/2025-04-05.md"}  # nested #backup/drill
        assert paths(mode, path="Homelab/*") <= {"Homelab/Home network.md", "Homelab/Backups.md",
                                                  "Homelab/Raspberry Pi DNS sinkhole.md"}
        assert paths(mode, path="Homelab/*")
        recent = paths(mode, since="2025-04-03")
        assert "Daily/2025-04-05.md" in recent and "Daily/2025-04-02.md" not in recent
        assert "Coffee/Pour-over brewing.md" not in recent  # created: 2025-03-02 in its frontmatter
        assert paths(mode, types=("transcript",)) == set()
        assert paths(mode, tags=("coffee",), path="Coffee/Espresso*") == {"Coffee/Espresso dialing in.md"}


def test_a_query_that_is_not_valid_unicode_is_refused_not_crashed(tmp_path, vault, embedder):
    from conftest import make_kb
    from pai_kb.errors import InvalidRequest
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        kb.search("coffee \ud800", k=3, mode="keyword")

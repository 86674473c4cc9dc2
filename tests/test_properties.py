"""Frontmatter properties are searchable text, cited at their own lines; a note that is only frontmatter
is found by its title, aliases, tags and properties; aliases stay out of the text (self-eval holds them out)."""

import pytest
from click.testing import CliRunner

from conftest import make_kb
from pai_kb.cli import main
from pai_kb.loaders.frontmatter import split_frontmatter, text_properties
from pai_kb.loaders.markdown import load_markdown
from pai_kb.models import Filters, HoldOut

ADA = "---\ntitle: Ada Quill\naliases: [Ada Q]\ntags: [person]\nrole: bookbinder in Lisbon\n---"
VELLUM = "---\naliases: [Mistress of Vellum]\ntags: [person]\n---\n"
KEEPER = """---
title: Quire keeper
cssclasses: [wide]
pai-kb-hash: 0a1b2c3d4e5f
pai-kb-source: inbox/keeper.html
created: 2024-01-02
updated: 2024-01-03T10:00:00
rating: 4
version: "1.2"
done: true
source: https://example.org/keeper
position: {x: 1, y: 2}
tags: [craft]
related:
  - "[[Ada Quill|Ada]]"
  - "[[Lisbon]]"
  - 7
summary: >
  Sews folded quires
  with linen thread.
---
# Quire keeper

Body text about sewing stations.
"""


def test_only_text_valued_properties_are_kept_with_links_read_as_shown_text():
    doc = load_markdown(KEEPER, "vault", "Quire keeper.md")
    block = doc.blocks[0]
    assert block.kind == "properties"
    assert block.text == "related: Ada, Lisbon\nsummary: Sews folded quires with linen thread."
    # cited at the frontmatter lines of `related` (line 14) through the end of `summary` (line 20)
    assert (block.line_start, block.line_end) == (14, 20)
    assert doc.tags == ("craft",) and doc.links == ()  # property values add no tag and no body link


def test_key_spans_are_the_lines_of_the_file():
    front = split_frontmatter(KEEPER.split("\n"))
    assert front.spans["title"] == (2, 2) and front.spans["related"] == (14, 17) and front.spans["summary"] == (18, 20)
    assert text_properties({"note": ["", "2024-05-06", "12", "plain words"], "flag": False}) == [("note", "plain words")]


def test_a_properties_only_note_has_one_block_of_its_properties_and_no_alias_in_it():
    doc = load_markdown(ADA, "vault", "people/ada.md")
    assert doc.title == "Ada Quill" and doc.aliases == ("Ada Q",) and doc.tags == ("person",)
    assert [(b.kind, b.text, b.line_start, b.line_end) for b in doc.blocks] == [
        ("properties", "role: bookbinder in Lisbon", 5, 5)]


def test_a_note_of_aliases_and_tags_only_still_gets_a_block():
    doc = load_markdown(VELLUM, "vault", "Vellum maker.md")
    assert [(b.kind, b.text, b.line_start, b.line_end) for b in doc.blocks] == [("properties", "Vellum maker", 1, 4)]
    assert load_markdown("", "vault", "empty.md").blocks == ()


@pytest.fixture
def people(tmp_path, embedder):
    vault = tmp_path / "vault"
    (vault / "people").mkdir(parents=True)
    (vault / "people" / "ada.md").write_text(ADA)
    (vault / "people" / "Maria Ortiz.md").write_text(VELLUM)
    (vault / "Quire keeper.md").write_text(KEEPER)
    (vault / "Binding.md").write_text("# Binding\n\nCoptic stitch binding needs no glue at all.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    return kb


def paths(hits) -> list[str]:
    return [h.chunk.path for h in hits]


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_a_properties_only_note_is_found_by_title_and_by_property_with_its_tag(people, mode):
    assert paths(people.search("Ada Quill", k=3, mode=mode))[0] == "people/ada.md"
    hits = people.search("bookbinder", k=5, mode=mode, filters=Filters(tags=("person",)))
    assert paths(hits)[0] == "people/ada.md"
    assert (hits[0].chunk.line_start, hits[0].chunk.line_end) == (5, 5)
    assert paths(people.search("Ada", k=5, mode=mode, filters=Filters(tags=("person",))))[0] == "people/ada.md"


def test_a_properties_only_note_is_found_by_its_aliases_which_self_eval_can_hold_out(people):
    assert paths(people.search("Ada Q", k=3, mode="keyword"))[0] == "people/ada.md"
    assert paths(people.search("Mistress of Vellum", k=3, mode="keyword")) == ["people/Maria Ortiz.md"]
    held = people.retriever.search("Mistress of Vellum", k=3, mode="keyword", hold_out=HoldOut(columns=("aliases",)))
    assert held == []  # the alias is in no other column: the eval's held-out label does not leak
    assert all("Vellum" not in c.text and "Ada Q" not in c.text for c in people.manifest.all_chunks())


def test_property_values_of_a_note_with_a_body_are_searchable(people):
    hits = people.search("linen thread", k=3, mode="keyword")
    assert paths(hits)[0] == "Quire keeper.md" and hits[0].chunk.line_start == 14
    assert "summary: Sews folded quires with linen thread." in hits[0].chunk.text
    assert paths(people.search("Ada", k=5, mode="keyword", filters=Filters(tags=("craft",)))) == ["Quire keeper.md"]
    for word in ("wide", "0a1b2c3d4e5f", "example.org", "html"):  # housekeeping is not text
        assert people.search(word, k=3, mode="keyword") == [], word


def test_cli_search_with_a_tag_finds_the_properties_only_note(people):
    c = people.config
    args = ["--vault", str(c.vault), "--index", str(c.index_dir), "--inbox", str(c.inbox)]
    result = CliRunner().invoke(main, [*args, "search", "bookbinder", "--tag", "person", "--mode", "keyword",
                                       "--local"])
    assert result.exit_code == 0, result.output
    assert "people/ada.md:5" in result.output and "bookbinder in Lisbon" in result.output


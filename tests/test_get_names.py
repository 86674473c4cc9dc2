"""`get` takes the names people paste: Obsidian's own link forms, names holding `:`, extensions in any
case, aliases."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import make_kb
from pai_kb.cli import main
from pai_kb.errors import InvalidRequest, NoteNotFound

HEADING_NOTE = """# Heading Note

Intro line.

## Section One

First section text.

## Section Two

Second section text.
More of section two.

### Deeper

Still inside section two.

## Section Three

```python
# not a heading
```

A paragraph that is a block.
It has two lines. ^para-1

- a list item
- another list item

^list-block

Last line.
"""


@pytest.fixture
def kb(tmp_path, embedder):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Heading Note.md").write_text(HEADING_NOTE)
    (vault / "Standup 10:30.md").write_text("# Standup 10:30\nDiscussed the release train.\n")
    (vault / "Ratio 16:9.md").write_text("# Widescreen\nSixteen by nine.\nSecond line.\n")
    (vault / "Shout.MD").write_text("# Shout\nLOUD TEXT\n")
    (vault / "Ada Quill.md").write_text("---\naliases: [Ada Q, The Bookbinder]\n---\n# Ada Quill\nBinds books.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    yield kb
    kb.close()


def lines_of(kb, spec):
    found = kb.note(spec)
    return found.line_start, found.line_end, found.text


def test_heading_forms_print_that_section(kb):
    start, end, text = lines_of(kb, "Heading Note#Section Two")
    assert (start, end) == (9, 16)
    assert text.startswith("## Section Two") and "Still inside section two." in text and "Section Three" not in text
    assert lines_of(kb, "[[Heading Note#Section Two]]") == (start, end, text)
    assert lines_of(kb, "[[Heading Note#section two|shown text]]") == (start, end, text)
    assert lines_of(kb, "Heading Note#Section Two#Deeper")[:2] == (14, 16)
    assert lines_of(kb, "Heading Note#Section Three")[2].count("```") == 2  # a `#` in code is no heading


def test_block_forms_print_that_block(kb):
    start, end, text = lines_of(kb, "Heading Note#^para-1")
    assert text == "A paragraph that is a block.\nIt has two lines. ^para-1" and (start, end) == (24, 25)
    assert lines_of(kb, "[[Heading Note#^list-block]]")[2] == "- a list item\n- another list item"


def test_link_form_prints_the_whole_note(kb):
    assert kb.note("[[Heading Note]]").text == HEADING_NOTE
    assert kb.note("![[Heading Note|alias]]").text == HEADING_NOTE


def test_names_with_colons_are_tried_whole_first(kb):
    assert kb.note("Standup 10:30").text == "# Standup 10:30\nDiscussed the release train.\n"
    assert kb.note("Ratio 16:9").text.startswith("# Widescreen")
    assert kb.note("Ratio 16:9.md:2").text == "Sixteen by nine."
    assert kb.note("Ratio 16:9:2-3").text == "Sixteen by nine.\nSecond line."


def test_extensions_in_any_case_and_aliases(kb):
    assert kb.note("Shout.MD").text == "# Shout\nLOUD TEXT\n"
    assert kb.note("shout.md").path == "Shout.MD"
    assert kb.note("The Bookbinder").path == "Ada Quill.md"
    assert kb.note("ada q").path == "Ada Quill.md"


def test_unknown_fragments_and_empty_names_say_what_is_there(kb):
    with pytest.raises(NoteNotFound, match=r"has no heading 'Section Nine' \(its headings: 'Heading Note', 'Section One'"):
        kb.note("Heading Note#Section Nine")
    with pytest.raises(NoteNotFound, match=r"has no block '\^nope'"):
        kb.note("Heading Note#^nope")
    with pytest.raises(InvalidRequest, match="the note name is empty"):
        kb.note("   ")


def test_cli_get_section_and_empty_argument(kb):
    c = kb.config
    base = ["--vault", str(c.vault), "--index", str(c.index_dir)]
    out = CliRunner().invoke(main, [*base, "get", "Heading Note#Section One", "--json"])
    assert out.exit_code == 0 and '"line_start": 5' in out.stdout and "First section text." in out.stdout
    empty = CliRunner().invoke(main, [*base, "get", ""])
    assert empty.exit_code == 2 and "the note name is empty" in empty.stderr

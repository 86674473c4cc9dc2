"""What pai-kb writes into a vault holds only the tags and links it means: page keywords become valid
Obsidian tags, and `#tag`, `[[link]]`, `%%comment%%` and `^block-id` copied from material are escaped so
Obsidian shows them literally and pai-kb's own loader reads them back as text."""

import logging

import pytest

from conftest import make_kb
from pai_kb.loaders.html import load_html
from pai_kb.loaders.markdown import escape_markdown, load_markdown
from pai_kb.loaders.obsidian import keyword_tags, valid_tag
from pai_kb.models import Filters

PAGE = """<html><head><title>Espresso at home</title>
<meta name="keywords" content="coffee, espresso grinder, #brewing">
<link rel="canonical" href="https://example.org/espresso"></head>
<body><article><h1>Espresso at home</h1>
<p>A burr grinder set fine gives an even puck; the shot should run for about twenty-eight seconds.</p>
<h2>Thoughts on the #metoo movement</h2>
<p>Baristas spoke up too. Obsidian users write [[links]] and ![[embeds]] and %%comments%% in notes.</p>
<p>A paragraph that ends with a caret word ^abc123</p>
<pre><code>#include &lt;stdio.h&gt; // [[not a link]]</code></pre>
</article></body></html>"""


def test_keywords_become_valid_obsidian_tags():
    assert keyword_tags("coffee, espresso grinder, #brewing") == ["coffee", "espresso-grinder", "brewing"]
    assert keyword_tags("Café crème; 2024; a/b; c++ ; , ;") == ["Café-crème", "a/b", "c"]
    assert valid_tag("  ") is None and valid_tag("#123") is None and valid_tag("12/34") is None
    assert valid_tag("#science/physics") == "science/physics" and valid_tag("2024-notes") == "2024-notes"


def test_an_html_clip_has_its_keywords_as_tags_and_its_hashtags_as_text():
    doc = load_html(PAGE.encode(), "inbox", "espresso.html")
    assert doc.tags == ("coffee", "espresso-grinder", "brewing")
    assert doc.links == ()
    text = "\n".join(b.text for b in doc.blocks)
    assert "Thoughts on the #metoo movement" in text
    assert "Obsidian users write [[links]] and ![[embeds]] and %%comments%% in notes." in text
    assert "ends with a caret word ^abc123" in text


def test_escaped_syntax_reads_back_as_text_and_code_stays_verbatim():
    source = ("Thoughts on #metoo, see [[Note|shown]] %%hidden%% `#inc [[x]]` end ^blk-1\n\n"
              "```\n#include [[q]] %%\n```\n#Summary and C# and #2024")
    escaped = escape_markdown(source)
    assert "```\n#include [[q]] %%\n```" in escaped and "`#inc [[x]]`" in escaped
    assert "\\#metoo" in escaped and "\\[\\[Note|shown\\]\\]" in escaped and "\\%\\%hidden\\%\\%" in escaped
    doc = load_markdown(escaped, "vault", "n.md")
    assert doc.tags == () and doc.links == ()
    assert [b.text for b in doc.blocks] == [
        "Thoughts on #metoo, see [[Note|shown]] %%hidden%% `#inc [[x]]` end ^blk-1",
        "```\n#include [[q]] %%\n```", "#Summary and C# and #2024"]
    assert escape_markdown(escape_markdown(source)) == escaped  # escaping twice changes nothing more


@pytest.fixture
def clipped(tmp_path, embedder):
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    vault.mkdir()
    inbox.mkdir()
    (inbox / "espresso.html").write_text(PAGE)
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    return kb, vault


def test_materialized_clip_round_trips_its_tags_and_literal_text(clipped):
    kb, vault = clipped
    [written] = kb.materialize()
    assert written.action == "created" and written.path == "Clippings/Espresso at home.md"
    raw = (vault / written.path).read_text()
    assert "## Thoughts on the \\#metoo movement" in raw and "\\[\\[links\\]\\]" in raw
    assert "#include <stdio.h> // [[not a link]]" in raw  # code is copied verbatim
    note = load_markdown(raw, "vault", written.path)
    assert set(note.tags) == {"coffee", "espresso-grinder", "brewing", "clippings"} and note.links == ()
    kb.index()
    hits = kb.search("burr grinder even puck", k=3, mode="keyword", filters=Filters(tags=("espresso-grinder",)))
    assert hits and set(hits[0].chunk.tags) >= {"coffee", "espresso-grinder", "brewing"}
    for tag in ("coffee,", "espresso", "grinder,", "metoo"):
        assert kb.search("burr grinder", k=3, mode="keyword", filters=Filters(tags=(tag,))) == [], tag


def test_frontmatter_values_pai_kb_writes_hold_no_link(tmp_path, embedder):
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    vault.mkdir()
    inbox.mkdir()
    (inbox / "odd.html").write_text(PAGE.replace("Espresso at home", "Why [[Zettelkasten]] #works"))
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    [written] = kb.materialize()
    raw = (vault / written.path).read_text()
    assert "[[Zettelkasten]]" not in raw and "\\[\\[Zettelkasten\\]\\]" in raw.split("---")[1]
    note = load_markdown(raw, "vault", written.path)
    assert note.title == "Why [[Zettelkasten]] #works" and note.links == ()
    assert "works" not in note.tags


def test_a_saved_answer_copies_headings_and_passages_as_text(tmp_path, embedder):
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Movements.md").write_text(
        "# Movements\n\n## Thoughts on the #metoo movement\n\n"
        "Survivors organised online under one hashtag and newsrooms followed. See \\[\\[Press\\]\\] and #activism.\n")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    answer = kb.ask("survivors organised online under one hashtag", use_llm=False)
    saved = kb.save_answer(answer)
    raw = saved.read_text()
    assert "Thoughts on the \\#metoo movement" in raw and "\\#activism" in raw and "\\[\\[Press\\]\\]" in raw
    assert "[[Movements#Thoughts on the metoo movement]]" in raw  # the heading link names the section
    note = load_markdown(raw, "vault", saved.relative_to(vault).as_posix())
    assert note.tags == ("pai-kb/answer",)
    assert note.links == ("Movements",)


def test_one_refused_item_does_not_stop_materialize_restore(tmp_path, embedder, caplog):
    """A note pai-kb wrote, replaced by a link to a file outside the vault, may not be written through;
    the other items are still written, and the refused one is named in a warning."""
    vault, inbox = tmp_path / "vault", tmp_path / "inbox"
    vault.mkdir()
    inbox.mkdir()
    (inbox / "espresso.html").write_text(PAGE)
    (inbox / "talk.vtt").write_text("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nWelcome to the talk on binding.\n")
    kb = make_kb(tmp_path, vault, embedder, inbox=inbox)
    kb.index()
    first = {w.source: w.path for w in kb.materialize()}
    outside = tmp_path / "outside.md"
    outside.write_text("not the vault's\n")
    clip = vault / first["inbox/espresso.html"]
    clip.unlink()
    clip.symlink_to(outside)
    transcript = vault / first["inbox/talk.vtt"]
    transcript.unlink()  # deleted by the person: --restore writes it again
    with caplog.at_level(logging.WARNING, logger="pai_kb"):
        written = {w.source: w.action for w in kb.materialize(restore=True)}
    assert written == {"inbox/talk.vtt": "created"} and transcript.is_file()
    assert outside.read_text() == "not the vault's\n"
    assert any("inbox/espresso.html: not materialised" in r.getMessage() and "outside" in r.getMessage()
               for r in caplog.records)

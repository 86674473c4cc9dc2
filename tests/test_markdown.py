from pai_kb.loaders import load_bytes
from pai_kb.loaders.markdown import load_markdown

NOTE = """---
aliases: Pup
tags: [animals]
---
# Dog

Dogs are #loyal friends. %% private remark %%

## Care
### Food
Feed twice a day. ^feeding

```python
# not a heading, not a #tag
print("woof")
```

> [!tip] Walks
> Walk every morning.

| Breed | Size |
| --- | --- |
| [[Beagle\\|beagle]] | small |
"""


def test_fields_and_tags():
    doc = load_markdown(NOTE, "vault", "Animals/Dog.md")
    assert doc.title == "Dog" and doc.aliases == ("Pup",)
    assert doc.tags == ("animals", "loyal")
    assert doc.links == ("Beagle",)
    assert doc.key == "vault/Animals/Dog.md"


def test_blocks_have_true_line_numbers():
    doc = load_markdown(NOTE, "vault", "Dog.md")
    lines = NOTE.split("\n")
    kinds = [(b.kind, b.line_start, b.line_end) for b in doc.blocks]
    assert kinds == [("heading", 5, 5), ("paragraph", 7, 7), ("heading", 9, 9), ("heading", 10, 10),
                     ("paragraph", 11, 11), ("code", 13, 16), ("quote", 18, 19), ("table", 21, 23)]
    assert lines[12].startswith("```python") and lines[15] == "```"


def test_block_text_is_cleaned():
    doc = load_markdown(NOTE, "vault", "Dog.md")
    texts = {b.kind: b.text for b in doc.blocks}
    assert [b.text for b in doc.blocks if b.kind == "paragraph"] == ["Dogs are #loyal friends.", "Feed twice a day."]
    assert texts["quote"] == "Tip: Walks\nWalk every morning."
    assert "beagle" in texts["table"] and "[[" not in texts["table"]
    assert texts["code"].startswith("```python") and "#tag" in texts["code"]


def test_title_from_frontmatter_overrides_file_name():
    doc = load_markdown("---\ntitle: Real Title\n---\ntext", "vault", "file-name.md")
    assert doc.title == "Real Title"


def test_url_from_clip_frontmatter():
    doc = load_markdown("---\nsource: https://example.org/a\n---\ntext", "inbox", "clip.md")
    assert doc.url == "https://example.org/a"


def test_broken_yaml_still_indexes_body_with_warning():
    doc = load_markdown("---\ntags: [x\n---\nBody words here.", "vault", "b.md")
    assert doc.blocks[0].text == "Body words here." and doc.blocks[0].line_start == 4
    assert len(doc.warnings) == 1 and "vault/b.md" in doc.warnings[0]


def test_invalid_utf8_is_replaced_with_warning():
    doc = load_bytes(b"# T\n\ncaf\xe9 au lait", "vault", "x.md")
    assert "caf\ufffd au lait" in doc.blocks[1].text
    assert "invalid UTF-8" in doc.warnings[0]


def test_utf16_with_bom_decodes():
    doc = load_bytes("# Titre\n\nél".encode("utf-16"), "vault", "x.md")
    assert doc.blocks[1].text == "él"


def test_empty_file_has_no_blocks():
    assert load_markdown("", "vault", "e.md").blocks == ()


def test_deep_nesting_does_not_crash():
    text = "\n".join("  " * i + "- item" for i in range(2000))
    doc = load_markdown(text, "vault", "deep.md")
    assert doc.blocks and doc.blocks[-1].line_end <= 2000


CODE_NOTE = """# Links

Link to a block with `[[2023-01-01#^quote-of-the-day]]` and see [[Other|shown text]].
Tags: #real and `#notatag`, comments `%% kept %%` and %% hidden %% gone.
A double span ``a `[[x]]` b`` and an unclosed ` [[Real link]] here.

```md
[[fenced]] #fenced %% fenced %%
```
"""


def test_code_spans_keep_obsidian_syntax_verbatim():
    doc = load_markdown(CODE_NOTE, "vault", "Links.md")
    prose = [b.text for b in doc.blocks if b.kind == "paragraph"][0]
    assert "`[[2023-01-01#^quote-of-the-day]]`" in prose and "see shown text." in prose
    assert "`#notatag`" in prose and "`%% kept %%`" in prose and "hidden" not in prose
    assert "``a `[[x]]` b``" in prose and "an unclosed ` Real link here" in prose
    assert [b.text for b in doc.blocks if b.kind == "code"] == ["```md\n[[fenced]] #fenced %% fenced %%\n```"]


def test_code_is_never_read_as_links_or_tags():
    doc = load_markdown(CODE_NOTE, "vault", "Links.md")
    assert doc.links == ("Other", "Real link")
    assert doc.tags == ("real",)


def test_outside_code_the_syntax_is_still_read():
    doc = load_markdown("Plain [[Target#Heading|alias]] and #tag with %% note %% text.\n", "vault", "p.md")
    assert doc.blocks[0].text == "Plain alias and #tag with            text."
    assert doc.links == ("Target",) and doc.tags == ("tag",)

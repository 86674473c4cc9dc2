from pai_kb.loaders import obsidian


def test_wikilink_parts():
    links = obsidian.parse_links("See [[Note#Heading|shown]] and ![[pic.png]] and [[Other#^abc]]")
    assert [(l.target, l.heading, l.alias, l.embed) for l in links] == [
        ("Note", "Heading", "shown", False), ("pic.png", "", "", True), ("Other", "^abc", "", False)]


def test_escaped_bar_in_table_link():
    links = obsidian.parse_links("| [[Internal links\\|links]] | x |")
    assert links[0].target == "Internal links" and links[0].alias == "links"


def test_render_links_shows_reader_words():
    text = "Go to [[Note|the note]], [[Guide#Setup]], [[#Local]], ![[diagram.png]] and [[Ref#^block1]]."
    assert obsidian.render_links(text) == "Go to the note, Guide > Setup, Local,  and Ref."


def test_comments_blanked_but_lines_kept():
    lines = ["a %%hidden%% b", "%% start", "secret", "end %% tail", "```", "%% in code %%", "```"]
    out = obsidian.strip_comments(lines)
    assert len(out) == len(lines)
    assert "hidden" not in out[0] and out[0].startswith("a ") and out[0].endswith(" b")
    assert "secret" not in "".join(out[1:4]) and out[3].endswith(" tail")
    assert out[5] == "%% in code %%"


def test_unclosed_comment_keeps_text():
    assert obsidian.strip_comments(["100%% sure", "still here"]) == ["100%% sure", "still here"]


def test_inline_tags_skip_code_links_and_numbers():
    text = "Tagged #alpha and #nested/tag, not `#code`, not [[Note#Heading]], not #123, yes #y2025 (#paren)"
    assert obsidian.inline_tags(text) == ["alpha", "nested/tag", "y2025", "paren"]


def test_tag_needs_leading_space():
    assert obsidian.inline_tags("url.com/#anchor and issue#12 and C#") == []


def test_block_ids_stripped():
    assert obsidian.strip_block_ids("A fact. ^fact-1\nNext line") == "A fact.\nNext line"


def test_callout_header():
    assert obsidian.callout_header("[!warning]- Careful now") == ("warning", "Careful now")
    assert obsidian.callout_header("[!tip]") == ("tip", "")
    assert obsidian.callout_header("just a quote") is None

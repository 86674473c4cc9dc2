"""Notes over `MAX_LINES` lines or `MAX_PARSE_STEPS` parser steps get the line-based pass, with a warning."""

from pai_kb.loaders.markdown import MAX_LINES, MAX_PARSE_STEPS, code_spans, load_markdown

LINE_PASS = "over {:,} lines or {:,} markdown parser steps; indexed with a line-based pass (paragraphs, no headings, lists or tables)"


def test_a_note_over_max_lines_is_cut_into_paragraphs_with_a_warning():
    lines = ["# Heading", "", "see [[Other Note|the other]] and #kept-tag", "```", "[[not a link]] #nocode", "```"]
    lines += [f"line {i}" for i in range(MAX_LINES)]
    doc = load_markdown("\n".join(lines), "vault", "big.md")
    assert doc.warnings == ("vault/big.md: " + LINE_PASS.format(MAX_LINES, MAX_PARSE_STEPS),)
    assert {b.kind for b in doc.blocks} == {"paragraph"}
    first = doc.blocks[0]
    assert (first.line_start, first.line_end) == (1, 100)  # no blank line after its 20th line
    assert first.text.startswith("# Heading\n\nsee the other and #kept-tag\n```\n[[not a link]] #nocode\n```")
    assert doc.links == ("Other Note",) and doc.tags == ("kept-tag",)
    assert doc.blocks[-1].line_end == len(lines) and doc.blocks[-1].text.endswith(f"line {MAX_LINES - 1}")
    assert all(b.line_end - b.line_start < 100 for b in doc.blocks)


def test_a_note_at_max_lines_keeps_its_structure():
    doc = load_markdown("# Heading\n\n" + "\n".join("x" for _ in range(MAX_LINES - 2)), "vault", "n.md")
    assert doc.warnings == () and doc.blocks[0].kind == "heading"


def test_a_note_too_deep_for_the_parser_gets_the_line_based_pass():
    """Under MAX_LINES lines, but nested lists make markdown-it's work grow with every line."""
    doc = load_markdown("# Title\n\n" + ("1. " * 16 + "deep\n") * 15_000, "vault", "deep.md")
    assert doc.warnings == ("vault/deep.md: " + LINE_PASS.format(MAX_LINES, MAX_PARSE_STEPS),)
    assert doc.blocks[0].text.startswith("# Title\n\n1. 1. ") and doc.blocks[-1].line_end == 15_002


def test_code_spans_pair_runs_of_equal_length_only():
    assert code_spans("a `b` ``c`d`` ```e") == ((2, 5), (6, 13))
    assert code_spans("`~~" * 4) == ((0, 4), (6, 10))

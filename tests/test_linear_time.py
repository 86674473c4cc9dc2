"""Every loader runs in time linear in its input, and the per-file budget stops whatever is not.

Adversarial 1 MB inputs per format (repeated openers, unclosed markup, deep nesting, many tiny cues, long
lines) must load in under 2 s each through `load_bytes`; the formerly quadratic cases must also take about
twice as long at 2 MB (ratio under 3); hypothesis repeats random units of each format's syntax to 1 MB.
Times are the loader's CPU seconds in the test's thread, so other work on a busy machine does not decide;
a budget of a few seconds stops a slow case, so it costs seconds, not minutes.
"""

import gc
import json
import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import HashEmbedder, make_kb
from pai_kb.errors import LoaderTimeout, SourceError
from pai_kb.loaders import load_bytes
from pdfs import children_cpu, many_pages, pdf

MB = 1 << 20
BOUND_S = 2.0
CAP_S = 20.0  # the wall-clock budget while timing: past it the case has failed anyway


def rep(unit: str, size: int, head: str = "", tail: str = "") -> bytes:
    """`unit` repeated so the whole is about `size` bytes."""
    return (head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail).encode()


def cue(head: str) -> str:
    return f"WEBVTT\n\n00:01.000 --> 00:02.000\n{head}"


SRT_CUE = "1\n00:00:01,000 --> 00:00:02,000\n"


def json_items(size: int, text: str, shape: str = "dict") -> bytes:
    item = json.dumps({"text": text, "start": 1.0, "duration": 1.0}, ensure_ascii=False) if shape == "dict" \
        else json.dumps([text, 1.0, 2.0], ensure_ascii=False)
    return ("[" + ",".join([item] * max(1, size // (len(item.encode()) + 1))) + "]").encode()


def times(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))



# (suffix, name, generator of about `size` bytes, marks)
CASES = [
    # Markdown notes and markdown clips (the markdown loader, markdown-it-py, frontmatter, obsidian syntax)
    (".md", "wikilink_openers", lambda s: rep("[[", s), ()),
    (".md", "embed_openers", lambda s: rep("![[", s), ()),
    (".md", "wikilink_unclosed_alias", lambda s: rep("[[a|", s), ()),
    (".md", "comment_unclosed", lambda s: rep("x ", s, head="%%"), ()),
    (".md", "comment_markers", lambda s: rep("%% x ", s), ()),
    (".md", "math_blocks", lambda s: rep("$$ x ", s), ()),
    (".md", "math_inline", lambda s: rep("$x ", s), ()),
    (".md", "backtick_runs_growing", lambda s: "".join("e" + "`" * i for i in range(1, 1500)).encode()[:s], ()),
    (".md", "backtick_run", lambda s: rep("`", s), ()),
    (".md", "lt_run", lambda s: rep("<", s), ()),
    (".md", "brackets_nested", lambda s: rep("[", s // 2) + rep("]", s // 2), ()),
    (".md", "link_openers", lambda s: rep("[a", s), ()),
    (".md", "unclosed_links", lambda s: rep("[a](<b", s), ()),
    (".md", "emphasis_mixed", lambda s: rep("*a_ ", s), ()),
    (".md", "blockquote_deep", lambda s: rep(">", s, tail=" x\n"), ()),
    (".md", "list_deep", lambda s: "".join("  " * i + "- x\n" for i in range(2000)).encode()[:s], ()),
    (".md", "fence_unclosed", lambda s: rep("code line\n", s, head="```python\n"), ()),
    (".md", "fences_toggle", lambda s: rep("```\nx\n", s), ()),
    (".md", "frontmatter_unclosed", lambda s: rep("k: v\n", s, head="---\n"), ()),
    (".md", "frontmatter_long_value", lambda s: rep("a", s, head="---\ntitle: ", tail="\n---\nbody\n"), ()),
    (".md", "tags", lambda s: rep("#tag ", s), ()),
    (".md", "table_pipes", lambda s: rep("|", s, head="| a | b |\n|---|---|\n"), ()),
    (".md", "link_references", lambda s: rep("[a]: u\n", s), ()),
    (".md", "many_headings", lambda s: rep("# h\n", s), ()),
    (".md", "tasks", lambda s: rep("- [ ] x\n", s), ()),
    (".md", "block_ids", lambda s: rep("x ^id\n", s), ()),
    (".md", "callouts", lambda s: rep("> [!note] x\n", s), ()),
    (".md", "highlight_and_strike", lambda s: rep("==~~", s), ()),
    (".md", "code_then_strike", lambda s: rep("`~~", s), ()),
    (".md", "footnote_openers", lambda s: rep("[^", s), ()),
    (".md", "long_line", lambda s: rep("word ", s), ()),
    # HTML clips (trafilatura, then the markdown loader)
    (".html", "div_nested", lambda s: rep("<div>", s, head="<html><body>"), ()),
    (".html", "lt_run", lambda s: rep("<", s, head="<html><body><p>"), ()),
    (".html", "comment_open", lambda s: rep("<!--", s, head="<html><body>"), ()),
    (".html", "attributes", lambda s: rep(' a="1"', s, head="<html><body><p", tail=">x</p>"), ()),
    (".html", "p_unclosed", lambda s: rep("<p>x ", s, head="<html><body>"), ()),
    (".html", "many_paragraphs", lambda s: rep("<p>Some words in a paragraph here.</p>\n", s,
                                               head="<html><body><article>", tail="</article>"), ()),
    (".html", "script_unclosed", lambda s: rep("x", s, head="<html><body><script>"), ()),
    # WebVTT and SRT
    (".vtt", "voice_openers", lambda s: rep("<v ", s, head=cue("")), ()),
    (".vtt", "lt_run", lambda s: rep("<", s, head=cue("")), ()),
    (".vtt", "class_openers", lambda s: rep("<c.", s, head=cue("")), ()),
    (".vtt", "voice_then_spaces", lambda s: rep(" ", s, head=cue("<v"), tail="x"), ()),
    (".vtt", "timestamp_openers", lambda s: rep("<00:00:01.000", s, head=cue("")), ()),
    (".vtt", "tiny_cues", lambda s: rep("00:01.000 --> 00:02.000\nx\n\n", s, head="WEBVTT\n\n"), ()),
    (".vtt", "blank_lines_after_timing", lambda s: rep("\n", s, head=cue(""), tail="x\n"), ()),
    (".vtt", "stray_paragraphs", lambda s: rep("text\n\n", s, head=cue("x\n\n")), ()),
    (".vtt", "note_blocks", lambda s: rep("NOTE x\n\n", s, head=cue("x\n\n")), ()),
    (".vtt", "arrows", lambda s: rep("-->", s, head=cue("x\n\n")), ()),
    (".vtt", "entities", lambda s: rep("&#", s, head=cue("")), ()),
    (".vtt", "one_long_cue", lambda s: rep("word\n", s, head=cue("")), ()),
    (".srt", "font_openers", lambda s: rep("<font ", s, head=SRT_CUE), ()),
    (".srt", "italic_openers", lambda s: rep("<i", s, head=SRT_CUE), ()),
    (".srt", "tiny_cues_without_blank_lines", lambda s: rep(SRT_CUE + "x\n", s), ()),
    (".srt", "lt_gt_text", lambda s: rep("x < 5 and y > 2 ", s, head=SRT_CUE), ()),
    # Plain text: stamped lines are a transcript, the rest goes to the markdown loader
    (".txt", "stamp_then_spaces", lambda s: rep(" ", s, head="00:01"), ()),
    (".txt", "stamps_with_long_spaces", lambda s: rep("00:01" + " " * 2000 + "\n", s), ()),
    (".txt", "stamped_lines", lambda s: rep("[00:01:23] words here\n", s), ()),
    (".txt", "digit_colons", lambda s: rep("1:", s), ()),
    (".txt", "plain_prose", lambda s: rep("Just some prose. ", s), ()),
    (".txt", "plain_lines", lambda s: rep("prose line\n", s), ()),
    # JSON transcripts
    (".json", "double_spaces", lambda s: json_items(s, "a  b"), ()),
    (".json", "non_ascii", lambda s: json_items(s, "café au lait"), ()),
    (".json", "escaped_newlines", lambda s: json_items(s, "a\nb"), ()),
    (".json", "list_items", lambda s: json_items(s, "é  é", "list"), ()),
    (".json", "segments_dict", lambda s: b'{"title": "t", "segments": ' + json_items(s - 40, "a  b") + b"}", ()),
    (".json", "deep_nesting", lambda s: rep("[", s // 2) + rep("]", s // 2), ()),
    (".json", "numbers_as_text", lambda s: rep('{"text": 5, "start": 1},', s, head="[", tail="{}]"), ()),
    # PDF (PDFium, in its own process)
    (".pdf", "text_operators", lambda s: pdf(b"BT /F1 12 Tf " + times(b"1 0 Td (ab) Tj ", s) + b"ET"), ()),
    (".pdf", "many_pages", many_pages, ()),
    (".pdf", "array_openers", lambda s: pdf(b"BT /F1 12 Tf (x) Tj " + times(b"[", s) + b" ET"), ()),
    (".pdf", "paren_nesting", lambda s: pdf(b"BT /F1 12 Tf (" + times(b"(", s // 2) + times(b")", s // 2)
                                            + b") Tj ET"), ()),
    (".pdf", "dict_openers", lambda s: pdf(b"BT /F1 12 Tf (x) Tj ET " + times(b"<<", s)), ()),
    (".pdf", "tj_arrays", lambda s: pdf(b"BT /F1 12 Tf [" + times(b"(a) -10 ", s) + b"] TJ ET"), ()),
    (".pdf", "hex_string", lambda s: pdf(b"BT /F1 12 Tf <" + times(b"41", s) + b"> Tj ET"), ()),
    (".pdf", "unterminated_string", lambda s: pdf(b"BT /F1 12 Tf (" + times(b"a", s)), ()),
]


def load_seconds(data: bytes, suffix: str) -> float:
    """CPU seconds `load_bytes` takes on `data` in this thread and in the processes it waits for (the PDF
    engine): the loader's own work, so other processes on a busy machine do not count. A document or a
    SourceError both count as done, and a case still running at CAP_S (wall clock) is stopped there by the
    budget."""
    gc.collect()
    gc.disable()  # the collector's pauses depend on what earlier tests left alive, not on this input
    started, started_children = time.thread_time(), children_cpu()
    try:
        load_bytes(data, "inbox", f"x{suffix}", budget_s=CAP_S)
    except LoaderTimeout:
        return float("inf")
    except SourceError:
        pass
    finally:
        gc.enable()
    return time.thread_time() - started + children_cpu() - started_children


@pytest.mark.parametrize("suffix,generate", [pytest.param(s, g, id=f"{s[1:]}-{n}", marks=m) for s, n, g, m in CASES])
def test_adversarial_1mb_input_loads_under_2s(suffix, generate):
    data = generate(MB)
    assert 0.9 * MB <= len(data) <= 1.1 * MB
    assert load_seconds(data, suffix) < BOUND_S


FORMERLY_QUADRATIC = ["vtt-voice_openers", "vtt-lt_run", "vtt-class_openers", "vtt-voice_then_spaces",
                      "vtt-timestamp_openers", "srt-font_openers", "srt-italic_openers", "txt-stamp_then_spaces",
                      "txt-stamps_with_long_spaces", "json-double_spaces", "json-non_ascii", "json-list_items",
                      "json-escaped_newlines"]


@pytest.mark.parametrize("suffix,generate", [pytest.param(s, g, id=f"{s[1:]}-{n}") for s, n, g, _ in CASES
                                             if f"{s[1:]}-{n}" in FORMERLY_QUADRATIC])
def test_doubling_the_input_about_doubles_the_time(suffix, generate):
    """Best of three runs each, so one scheduling hiccup does not decide."""
    one, two = generate(MB), generate(2 * MB)
    t1 = min(load_seconds(one, suffix) for _ in range(3))
    t2 = min(load_seconds(two, suffix) for _ in range(3))
    assert t2 / max(t1, 0.005) < 3, (t1, t2)


# --- hypothesis: random units of each format's syntax, repeated to 1 MB --------------------------------

FRAGMENTS = {
    ".md": ["[[", "]]", "![[", "|", "%%", "$$", "$", "`", "```", "<", ">", "[", "]", "(", ")", "*", "_", "#",
            "> ", "- ", "  ", "\n", "---", "^id", "==", "~~", "\\", "&#", "[^", "http://", ":", "word"],
    ".html": ["<div>", "</div>", "<p>", "</p>", "<", ">", "<!--", "-->", "<a href='", "'", "<table>", "<td>",
              "&amp;", "&#", "<script>", "<br/>", "word", " ", "\n", "<h1>", "</h1>"],
    ".vtt": ["<v ", "<v.a ", "<c.", "<c>", "</c>", "<i>", "<", ">", "<00:00:01.000>", "-->", "00:01.000", "\n",
             "\n\n", "NOTE", "WEBVTT", "&", "&amp;", " ", "word", "1", ".", ":"],
    ".srt": ["<font ", "<font color='x'>", "</font>", "<i>", "<", ">", "-->", "00:00:01,000", "\n", "\n\n", "1",
             " ", "word", ","],
    ".txt": ["00:01", "[00:01:23]", " ", "  ", "-", ":", "\n", "word", "1", "[", "]", "title:", "url:"],
    ".json": ["a", " ", "  ", "é", "\\n", "\\u00e9", "\\\"", "x"],
}
HEADS = {".vtt": cue(""), ".srt": SRT_CUE, ".txt": "00:00 start\n", ".md": "", ".html": "<html><body>",
         ".json": ""}


def fuzz_input(suffix: str, unit: str) -> bytes:
    if suffix == ".json":  # the fragments go inside cue texts, so the file stays valid JSON
        return json_items(MB, unit)
    return rep(unit, MB, head=HEADS[suffix])


def fuzz(suffix: str, marks=()):  # noqa: ANN201 — a test factory
    # No shrinking: each try costs up to CAP_S, and the failing unit is in the assertion message.
    @settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(unit=st.lists(st.sampled_from(FRAGMENTS[suffix]), min_size=1, max_size=6).map("".join))
    def test(unit):
        assert load_seconds(fuzz_input(suffix, unit), suffix) < BOUND_S, repr(unit)

    for mark in marks:
        test = mark(test)
    return test


test_fuzz_vtt = fuzz(".vtt")
test_fuzz_srt = fuzz(".srt")
test_fuzz_txt = fuzz(".txt")
test_fuzz_json = fuzz(".json")
test_fuzz_md = fuzz(".md")
test_fuzz_html = fuzz(".html")


# --- the per-file budget -------------------------------------------------------------------------------

SLOW_NOTE = rep("# h\n", 4 * MB)  # over a second in the markdown loader, which is linear (see above)


def test_budget_stops_a_slow_file_and_leaves_no_alarm_behind():
    started = time.perf_counter()
    with pytest.raises(LoaderTimeout, match=r"^vault/slow\.md: still loading after 0\.05 s, the per-file time budget"):
        load_bytes(SLOW_NOTE, "vault", "slow.md", budget_s=0.05)
    assert time.perf_counter() - started < 2
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert load_bytes(b"# Fine\n\nsmall note\n", "vault", "fine.md", budget_s=0.05).blocks[-1].text == "small note"


def test_budget_stops_code_that_catches_broad_exceptions():
    """trafilatura catches `Exception` inside; the alarm repeats until loading really stops."""
    data = rep("<", MB, head="<html><body><p>")  # about a second inside trafilatura
    started = time.perf_counter()
    with pytest.raises(LoaderTimeout, match="inbox/page.html: still loading after 0.2 s"):
        load_bytes(data, "inbox", "page.html", budget_s=0.2)
    assert time.perf_counter() - started < 2


def test_off_the_main_thread_load_runs_without_a_budget():
    result: list = []
    worker = threading.Thread(target=lambda: result.append(load_bytes(b"# T\n\nthreaded note\n", "vault", "t.md",
                                                                      budget_s=0.01)))
    worker.start()
    worker.join(timeout=30)
    assert result and result[0].blocks[-1].text == "threaded note"


def test_sync_skips_a_file_over_budget_with_a_warning_and_indexes_the_rest(tmp_path, vault):
    (vault / "slow.md").write_bytes(SLOW_NOTE)
    (vault / "quick.md").write_text("# Quick\n\nthe marmalade lighthouse note\n")
    kb = make_kb(tmp_path, vault, HashEmbedder(), load_budget_s=0.05)  # the setting sources.load_budget_s
    report = kb.index()
    assert [w for w in report.warnings if "slow.md" in w] == [
        "vault/slow.md: still loading after 0.05 s, the per-file time budget; skipped — report the file as a "
        "loader bug, or split it"]
    assert report.skipped >= 1 and "vault/slow.md" in kb.manifest.file_errors()
    assert kb.search("marmalade lighthouse", k=1, mode="keyword")[0].chunk.path == "quick.md"
    assert not kb.manifest.chunks_of("vault/slow.md")
    kb.close()

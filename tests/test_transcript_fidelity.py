"""Every word a transcript's cues carry reaches the index: blank lines, markup and stray `<`/`>` included.
Literal cases first, then a property over generated WebVTT and SRT files chunked by the real chunker."""

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA, needs_shared
from pai_kb.chunking import chunk_document
from pai_kb.loaders import load_bytes
from pai_kb.loaders.transcript import clean_cues, parse_cues


def texts(data: str, name: str = "t.vtt") -> list[str]:
    return [b.text for b in load_bytes(data.encode(), "inbox", name).blocks]


def test_blank_line_between_timing_and_text_keeps_the_text():
    vtt = ("WEBVTT\n\n00:45:10.000 --> 00:45:16.960\nFog rolled in.\n\n"
           "00:45:16.960 --> 00:45:20.600\n\nThe lighthouse keeper saw it from deck four\n\n"
           "00:45:20.600 --> 00:45:22.000\nThen it was gone.\n")
    doc = load_bytes(vtt.encode(), "inbox", "t.vtt")
    assert [(b.text, b.start_s, b.end_s) for b in doc.blocks] == [
        ("Fog rolled in.", 2710.0, 2716.96), ("The lighthouse keeper saw it from deck four", 2716.96, 2720.6),
        ("Then it was gone.", 2720.6, 2722.0)]
    assert (doc.blocks[1].line_start, doc.blocks[1].line_end) == (6, 8) and doc.warnings == ()


def test_blank_line_after_timing_then_cue_number_starts_the_next_cue():
    srt = "1\n00:00:01,000 --> 00:00:02,000\n\n2\n00:00:02,000 --> 00:00:03,000\nsecond\n"
    assert texts(srt, "t.srt") == ["second"]


def test_angle_brackets_that_are_not_markup_are_kept():
    line = "Keep the ratio x < 5 and y > 2 for the bonsai soil."
    assert texts(f"WEBVTT\n\n00:01.000 --> 00:02.000\n{line}\n") == [line]
    assert texts(f"1\n00:00:01,000 --> 00:00:02,000\n{line}\n", "t.srt") == [line]
    assert texts("WEBVTT\n\n00:01.000 --> 00:02.000\n<<< a<b >>> <3 <html> <vx> <br/>\n") == [
        "<<< a<b >>> <3 <html> <vx> <br/>"]


def test_the_markup_the_formats_define_is_stripped():
    vtt = ("WEBVTT\n\n00:01.000 --> 00:05.000\n<v.loud Ann Lee><c.yellow.bg_blue>one</c> <i>two</i> <b>three</b> "
           "<u>four</u> <ruby>five<rt>go</rt></ruby> <lang en-GB>six</lang>"
           "<00:00:03.500><c> seven</c></v>\n")
    assert texts(vtt) == ["Ann Lee: one two three four fivego six seven"]
    srt = '1\n00:00:01,000 --> 00:00:02,000\n<font color="#ffff00">eight</font> <I>nine</I> <b>ten</b>\n'
    assert texts(srt, "t.srt") == ["eight nine ten"]
    assert texts("WEBVTT\n\n00:01.000 --> 00:02.000\n&lt;v Bob&gt; said x &amp;&amp; y\n") == ["<v Bob> said x && y"]


def test_text_after_a_cue_ended_is_kept_with_the_cue_before_and_a_warning():
    vtt = ("WEBVTT\n\n00:01.000 --> 00:02.000\nfirst cue\n\nstray paragraph one\nstray line two\n\n"
           "00:02.000 --> 00:03.000\nsecond cue\n\nlast words of the file\n")
    doc = load_bytes(vtt.encode(), "inbox", "t.vtt")
    assert [(b.text, b.line_start, b.line_end) for b in doc.blocks] == [
        ("first cue stray paragraph one stray line two", 3, 7), ("second cue last words of the file", 9, 12)]
    assert doc.warnings == ("inbox/t.vtt: 3 line(s) of text outside any cue (after a blank line that ended a cue) "
                            "kept with the nearest cue; check the file's blank lines",)


def test_text_before_the_first_cue_joins_the_first_cue():
    srt = "A talk about soil\n\n1\n00:00:01,000 --> 00:00:02,000\nhello\n"
    doc = load_bytes(srt.encode(), "inbox", "t.srt")
    assert [(b.text, b.line_start) for b in doc.blocks] == [("A talk about soil hello", 1)] and len(doc.warnings) == 1


def test_identifiers_notes_and_header_are_not_text():
    vtt = ("WEBVTT\nKind: captions\n\nNOTE a comment\nover two lines\n\nintro\n00:01.000 --> 00:02.000\none\n\n"
           "00:02.000 --> 00:03.000\n\nNOTE skipped too\n\nSTYLE\n::cue { color: red }\n\n7\n00:03.000 --> 00:04.000\n"
           "two\n")
    doc = load_bytes(vtt.encode(), "inbox", "t.vtt")
    assert [b.text for b in doc.blocks] == ["one", "two"] and doc.warnings == ()


def test_unreadable_timing_skips_its_cue_with_a_warning_and_its_identifier():
    vtt = "WEBVTT\n\n00:01.000 --> 00:02.000\none\n\nid7\n00:xx --> 00:09.000\ngarbled\n\n00:10.000 --> 00:11.000\ntwo\n"
    doc = load_bytes(vtt.encode(), "inbox", "t.vtt")
    assert [b.text for b in doc.blocks] == ["one", "two"]
    assert doc.warnings == ("inbox/t.vtt: 1 cue(s) with unreadable timestamps skipped",)


def test_json_cue_lines_found_whatever_the_spacing_or_escaping():
    items = [{"text": "plain words", "start": 0, "end": 1}, {"text": "café  au   lait", "start": 1, "end": 2},
             {"text": "tab\there", "start": 2, "end": 3}]
    data = json.dumps(items, indent=1, ensure_ascii=False)
    blocks = load_bytes(data.encode(), "inbox", "t.json").blocks
    lines = data.split("\n")
    assert [b.text for b in blocks] == ["plain words", "café au lait", "tab here"]
    assert ["plain words" in lines[blocks[0].line_start - 1], "café  au" in lines[blocks[1].line_start - 1],
            "tab\\there" in lines[blocks[2].line_start - 1]] == [True, True, True]


@needs_shared()
def test_shared_vtt_files_keep_every_cue_line():
    """The real WebVTT files: every text line of every cue is in the blocks, and none is stray."""
    for path in sorted((DATA / "transcripts-vtt").glob("*.vtt")):
        raw = path.read_text(encoding="utf-8")
        doc = load_bytes(raw.encode(), "inbox", path.name)
        assert doc.blocks and not any("outside any cue" in w for w in doc.warnings), path.name
        found = " ".join(b.text for b in doc.blocks)
        for cue in parse_cues(raw)[0]:
            for line in cue.lines:
                words = re.sub(r"<[^<>]*>", " ", line).split()
                assert all(w in found for w in words), (path.name, line)


# --- the property: every word of every cue's text is in some chunk -------------------------------------

TAG_NAMES = {"c", "i", "b", "u", "v", "ruby", "rt", "lang", "font"}
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789éß", min_size=2, max_size=8).filter(
    lambda w: w not in TAG_NAMES)
MARKUP = st.sampled_from(["<c>", "</c>", "<c.yellow>", "<c.colorE5E5E5>", "<i>", "</i>", "<b>", "</b>", "<u>",
                          "</u>", "<ruby>", "<rt>", "</rt>", "</ruby>", "<lang en>", "</lang>", "<00:00:01.500>",
                          "</v>", "<font color=\"red\">", "</font>"])
STRAY = st.sampled_from(["<", ">", "<<", ">>", "< ", " >", "->", "<-", "a < b", "x > y", "<3", "--", "<>"])
SEP = st.sampled_from([" ", "", "  ", "\t"])
# A cue text line: words and stray characters anywhere, markup between them.
TOKEN = st.one_of(WORD.map(lambda w: ("word", w)), MARKUP.map(lambda m: ("markup", m)),
                  STRAY.map(lambda s: ("stray", s)))
LINE = st.lists(st.tuples(TOKEN, SEP), min_size=1, max_size=10)
CUE = st.fixed_dictionaries({"lines": st.lists(LINE, min_size=0, max_size=3),
                             "blank_after_timing": st.integers(0, 2), "blank_after": st.integers(1, 3),
                             "voice": st.sampled_from([None, "Ann", "Bob Ray"]), "number": st.booleans()})


def render(cues: list[dict], srt: bool) -> tuple[str, list[str]]:
    """The file's text, and the words of its cues' text as a reader sees them (markup gone, every other
    character kept, split at whitespace)."""
    out = [] if srt else ["WEBVTT", ""]
    words: list[str] = []
    comma = "," if srt else "."
    for i, cue in enumerate(cues, start=1):
        if srt or cue["number"]:
            out.append(str(i))
        out.append(f"00:{i // 60:02d}:{i % 60:02d}{comma}000 --> 00:{i // 60:02d}:{i % 60:02d}{comma}900")
        out.extend([""] * cue["blank_after_timing"])
        for j, line in enumerate(cue["lines"]):
            voice = f"<v {cue['voice']}>" if cue["voice"] and j == 0 and not srt else ""
            out.append(voice + "".join(token + sep for (_, token), sep in line))
            words.extend("".join(("" if kind == "markup" else token) + sep for (kind, token), sep in line).split())
        out.extend([""] * cue["blank_after"])
    return "\n".join(out), words


def counter(texts: list[str]) -> list[int]:
    return [len(t.split()) + len(t) // 40 for t in texts]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cues=st.lists(CUE, min_size=1, max_size=8), srt=st.booleans())
def test_every_cue_word_reaches_a_chunk(cues, srt):
    text, words = render(cues, srt)
    doc = load_bytes(text.encode(), "inbox", "t.srt" if srt else "t.vtt")
    chunks = [set(c.text.split()) for c in chunk_document(doc, counter, 40, 8, 60)]
    missing = [w for w in words if not any(w in chunk for chunk in chunks)]
    assert not missing, (missing, text)
    assert not any("outside any cue" in w for w in doc.warnings), text


def test_property_renderer_makes_the_cases_it_claims():
    """The generator really produces blank lines after timing lines, markup and stray brackets."""
    cue = {"lines": [[(("word", "alpha"), ""), (("stray", "<"), ""), (("markup", "<i>"), ""), (("word", "beta"), " ")]],
           "blank_after_timing": 1, "blank_after": 1, "voice": "Ann", "number": False}
    text, words = render([cue], srt=False)
    assert text == "WEBVTT\n\n00:00:01.000 --> 00:00:01.900\n\n<v Ann>alpha<<i>beta \n" and words == ["alpha<beta"]
    assert [b.text for b in clean_cues(parse_cues(text)[0])] == ["Ann: alpha<beta"]

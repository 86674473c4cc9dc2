"""Transcript parsing with literal inputs."""

import json

import pytest

from pai_kb.errors import SourceError
from pai_kb.loaders import load_bytes
from pai_kb.loaders.transcript import clean_cues, parse_cues, parse_json, parse_stamped_text, seconds
from pai_kb.urls import url_at


def test_timestamps():
    assert seconds("01:02:03.500") == 3723.5 and seconds("02:03,250") == 123.25
    assert seconds("0:0:0.210") == 0.21 and seconds("1:23") == 83


VTT = """WEBVTT
Kind: captions
url: https://www.youtube.com/watch?v=abc123

NOTE a comment
that spans lines

STYLE
::cue { color: red }

intro
00:00.000 --> 00:02.500
<v Ann>Hello <b>there</b> &amp; welcome.</v>

00:02.500 --> 00:05.000
<v Ann>We start now.
00:05.000 --> 00:07.000
<v Bob>My turn.

00:xx --> 00:09.000
garbled cue text

0:0:9.0 --> 0:0:8.5
Backwards times are kept, never negative.
"""


def test_vtt_edge_cases():
    cues, header, bad = parse_cues(VTT)
    assert header["url"] == "https://www.youtube.com/watch?v=abc123" and bad == 1
    blocks = clean_cues(cues)
    assert [b.text for b in blocks] == ["Ann: Hello there & welcome.", "We start now.", "Bob: My turn.",
                                        "Backwards times are kept, never negative."]
    assert [(b.start_s, b.end_s) for b in blocks] == [(0, 2.5), (2.5, 5), (5, 7), (9, 9)]
    lines = VTT.split("\n")
    assert "Hello" in lines[blocks[0].line_start] and lines[blocks[0].line_start - 1].startswith("00:00.000")


def test_srt_with_missing_blank_line():
    srt = "1\n00:00:01,000 --> 00:00:02,000\nfirst line\n2\n00:00:02,000 --> 00:00:03,000\nsecond\n"
    assert [b.text for b in clean_cues(parse_cues(srt)[0])] == ["first line", "second"]


def test_youtube_rolling_duplicates_and_word_timestamps():
    vtt = """WEBVTT

00:00:01.000 --> 00:00:02.000 align:start position:0%
the quick<00:00:01.500><c> brown</c>

00:00:02.000 --> 00:00:02.010
the quick brown

00:00:02.010 --> 00:00:04.000
the quick brown
<c.colorE5E5E5>fox jumps</c>
"""
    assert [b.text for b in clean_cues(parse_cues(vtt)[0])] == ["the quick brown", "fox jumps"]


def test_overlapping_cues_keep_their_times():
    vtt = "WEBVTT\n\n00:01.000 --> 00:05.000\none\n\n00:03.000 --> 00:04.000\ntwo\n"
    assert [(b.start_s, b.end_s) for b in clean_cues(parse_cues(vtt)[0])] == [(1, 5), (3, 4)]


def test_stamped_plain_text_forms():
    text = "[00:01:23] first\n00:01:30 second\n1:45 - third\nno stamp here\n"
    blocks = parse_stamped_text(text)
    assert [(b.text, b.start_s, b.end_s, b.line_start) for b in blocks] == [
        ("first", 83, 90, 1), ("second", 90, 105, 2), ("third", 105, 105, 3)]
    assert parse_stamped_text("Just prose.\nMore prose.\n") is None


def test_json_shapes():
    blocks, _ = parse_json(json.dumps([{"text": "a b", "start": 1.5, "duration": 2}, {"text": "c", "start": 4}]))
    assert [(b.text, b.start_s, b.end_s) for b in blocks] == [("a b", 1.5, 3.5), ("c", 4, 4)]
    blocks, _ = parse_json(json.dumps([["One sentence.", 0.0, 2.0], ["Two.", 2.0, 3.5]], indent=1))
    assert [(b.text, b.end_s) for b in blocks] == [("One sentence.", 2.0), ("Two.", 3.5)]
    assert blocks[1].line_start > blocks[0].line_start
    blocks, meta = parse_json('{"title": "T", "url": "https://x"}')
    assert blocks == [] and meta["title"] == "T"
    with pytest.raises(SourceError, match="not valid JSON"):
        parse_json("[{")


def test_url_at():
    assert url_at("https://www.youtube.com/watch?v=abc", 754.9) == "https://www.youtube.com/watch?v=abc&t=754s"
    assert url_at("https://youtu.be/abc?t=3s", 60) == "https://youtu.be/abc?t=60s"
    assert url_at("https://vimeo.com/123", 5) == "https://vimeo.com/123#t=5s"
    assert url_at("https://example.org/talk", 5) == "https://example.org/talk"
    assert url_at(None, 5) is None and url_at("https://youtu.be/x", None) == "https://youtu.be/x"


def test_transcript_document_with_sidecar_url():
    doc = load_bytes(b"1\n00:00:01,000 --> 00:00:04,000\nhello\n", "inbox", "talk.srt",
                     {"webpage_url": "https://www.youtube.com/watch?v=zz", "title": "A talk"})
    assert doc.source_type == "transcript" and doc.title == "A talk" and doc.url.endswith("v=zz")


def test_latin1_transcript_is_decoded_with_warning():
    doc = load_bytes("WEBVTT\n\n00:01.000 --> 00:02.000\nCafé crème\n".encode("latin-1"), "inbox", "t.vtt")
    assert doc.blocks[0].text == "Caf\ufffd cr\ufffdme" and "invalid UTF-8" in doc.warnings[0]


def test_no_cues_is_an_error():
    with pytest.raises(SourceError, match="no cues"):
        load_bytes(b"WEBVTT\n\nnothing timed here\n", "inbox", "empty.vtt")

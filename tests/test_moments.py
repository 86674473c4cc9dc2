"""A transcript passage spans a minute or more; its citation points at the cue that answers the query
(`Hit.at_s`), found by the real model from the cue vectors stored with the chunk."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import make_kb
from pai_kb.cli import main

# (start second, a cue) of one long memo: far more than one chunk's budget of cues in each chunk.
CUES = [
    (4.0, "Good morning everyone, this is the weekly planning call."),
    (11.5, "The quarterly budget meeting moved to Thursday afternoon."),
    (19.0, "Our landlord agreed to repair the leaking kitchen window next week."),
    (27.5, "Remember to water the tomato plants before the heat wave arrives."),
    (36.0, "The new hire starts on Monday and needs a laptop and a badge."),
    (44.5, "We decided to migrate the database to Postgres by the end of the year."),
    (53.0, "The bakery on the corner sells sourdough bread only on weekends."),
    (61.5, "The train to the airport leaves every fifteen minutes from platform two."),
    (70.0, "Please renew the car insurance before it expires in October."),
    (78.5, "That is everything for today, thanks for joining."),
]
QUESTIONS = [("which database are we moving to?", 44.5), ("who fixes the broken window in the kitchen?", 19.0),
             ("how often does the airport train run?", 61.5), ("what must be renewed before autumn?", 70.0)]


def stamp(seconds: float) -> str:
    return f"00:{int(seconds) // 60:02d}:{seconds % 60:06.3f}"


def memo_vault(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    cues = "".join(f"{stamp(start)} --> {stamp(start + 6)}\n{text}\n\n" for start, text in CUES)
    (vault / "planning call.vtt").write_text("WEBVTT\n\n" + cues)
    (vault / "Garden.md").write_text("# Garden\n\nThe roses need pruning in early spring.\n")
    return vault


def test_a_transcript_citation_points_at_the_cue_that_answers(tmp_path, real_embedder):
    kb = make_kb(tmp_path, memo_vault(tmp_path), real_embedder)
    kb.index()
    try:
        for question, said in QUESTIONS:
            hit = next(h for h in kb.search(question, k=3) if h.chunk.source_type == "transcript")
            assert hit.chunk.start_s == 4.0 and hit.chunk.end_s >= 78.5, "the memo should be one passage"
            assert hit.at_s == said and hit.cited_s == said, question
        keyword = next(h for h in kb.search("Postgres", k=3, mode="keyword") if h.chunk.source_type == "transcript")
        assert keyword.at_s is None and keyword.cited_s == 4.0  # no query vector: the passage's start
    finally:
        kb.close()


def test_the_cli_and_json_cite_the_moment_and_a_re_index_keeps_it(tmp_path, real_embedder):
    vault = memo_vault(tmp_path)
    kb = make_kb(tmp_path, vault, real_embedder)
    kb.index()
    (vault / "planning call.vtt").rename(vault / "Meetings call.vtt")
    report = kb.index()  # a move: vectors (and the cues' vectors) reused, not embedded again
    kb.close()
    assert report.chunks_embedded == 0
    args = ["--vault", str(vault), "--inbox", str(tmp_path / "inbox"), "--index", str(tmp_path / "index")]
    out = CliRunner().invoke(main, [*args, "search", "which database are we moving to?", "-k", "2", "--local"])
    assert out.exit_code == 0, out.output
    assert "@ 00:00:44" in out.output and "@ 00:00:04" not in out.output
    out = CliRunner().invoke(main, [*args, "search", "which database are we moving to?", "-k", "3", "--json", "--local"])
    results = [r for r in json.loads(out.output)["results"] if r["source_type"] == "transcript"]
    assert results and all(r["at_s"] == 44.5 and r["start_s"] == 4.0 for r in results)

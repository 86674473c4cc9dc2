"""Every web clip and transcript in ../shared/data: ingestion, extraction quality, timestamps, retrieval."""

import json
import statistics
from pathlib import Path

import lxml.html

from conftest import DATA, SOURCE_FOLDERS, needs_shared
from pai_kb.evaluation import token_f1
from pai_kb.loaders import load_bytes
from pai_kb.loaders.transcript import parse_cues

pytestmark = needs_shared()
QUESTIONS = [json.loads(line) for line in (Path(__file__).parent / "data/sources_questions.jsonl").open()]


def test_every_file_ingests(sources_kb):
    report = sources_kb.sources_report
    assert report.skipped == 0 and sources_kb.manifest.file_errors() == {}
    indexed = set(sources_kb.manifest.file_states())
    for folder in SOURCE_FOLDERS:
        files = [p for p in (DATA / folder).rglob("*") if p.is_file() and p.name != "SOURCE.txt"]
        assert files and all(f"inbox/{p.relative_to(DATA).as_posix()}" in indexed for p in files), folder
    types = sources_kb.manifest.source_types()
    assert types["inbox/transcripts-3b1b/2024_gpt/captions.srt"] == "transcript"
    assert types["inbox/webclips-readability/ars-1/source.html"] == "webclip"
    assert types["inbox/webclips-obsidian-clipper/68 Bits of Unsolicited Advice.md"] == "webclip"


def test_extraction_quality_on_readability_pages(capsys):
    scores = {}
    for page in sorted(p for p in (DATA / "webclips-readability").iterdir() if p.is_dir()):
        doc = load_bytes((page / "source.html").read_bytes(), "inbox", f"{page.name}/source.html")
        want = lxml.html.fromstring((page / "expected.html").read_text(encoding="utf-8")).text_content()
        scores[page.name] = token_f1("\n".join(b.text for b in doc.blocks), want)
    worst = min(scores, key=scores.get)
    with capsys.disabled():
        print(f"\n[webclips-readability] token F1 mean={statistics.mean(scores.values()):.3f} "
              f"worst={scores[worst]:.3f} ({worst})")
    assert statistics.mean(scores.values()) >= 0.93 and scores[worst] >= 0.85


def test_transcript_chunk_times_match_their_cues(sources_kb):
    for srt in sorted((DATA / "transcripts-3b1b").glob("*/captions.srt")):
        cues, _, _ = parse_cues(srt.read_text(encoding="utf-8"))
        key = f"inbox/{srt.relative_to(DATA).as_posix()}"
        chunks = sources_kb.manifest.chunks_of(key)
        assert chunks, key
        for chunk in chunks:
            inside = [c for c in cues if chunk.start_s <= c.start and c.end <= chunk.end_s + 1e-6]
            assert inside and inside[0].start == chunk.start_s, (key, chunk.start_s)
            spoken = " ".join(" ".join(line.split()) for c in inside for line in c.lines)
            assert " ".join(chunk.text.split()[:6]) in " ".join(spoken.split()), (key, chunk.start_s)


def test_spoken_sentence_finds_its_moment(sources_kb):
    timings = json.loads((DATA / "transcripts-3b1b/2024_attention/sentence_timings.json").read_text())
    sentence, start, end = timings[40]
    hits = sources_kb.search(sentence, k=5)
    assert hits[0].chunk.path.startswith("transcripts-3b1b/2024_attention/")
    timed = [h.chunk for h in hits if h.chunk.start_s is not None and h.chunk.path.startswith("transcripts-3b1b/2024_attention/")]
    assert any(c.start_s <= start and end <= c.end_s for c in timed)


def test_own_questions_hit_at_5(sources_kb, capsys):
    hits = 0
    for item in QUESTIONS:
        paths = [h.chunk.path for h in sources_kb.search(item["q"], k=5, per_note=1)]
        hits += any(p.startswith(tuple(item["relevant"])) for p in paths)
    with capsys.disabled():
        print(f"\n[clips and transcripts, {len(QUESTIONS)} questions] hit@5={hits / len(QUESTIONS):.3f}")
    assert hits / len(QUESTIONS) >= 0.8

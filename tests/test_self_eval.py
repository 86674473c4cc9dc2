"""`pai-kb eval --self`: questions the vault labels itself, asked with the label's own text held out."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import indexed_sample, needs_shared
from pai_kb.cli import main
from pai_kb.models import Chunk, Hit, HoldOut
from pai_kb.self_eval import (alias_questions, best_threshold, heading_questions, hit_and_rank, informative,
                              link_questions, without_heading)


def chunk(doc_key: str, heading: str, text: str = "body", aliases: tuple[str, ...] = (), n: int = 0) -> Chunk:
    return Chunk(id=f"{doc_key}#{n}", doc_key=doc_key, ordinal=n, title=heading.split(" > ")[0], heading=heading,
                 text=text, embed_text="", line_start=1, line_end=2, aliases=aliases)


def test_labels_that_repeat_the_name_or_hold_no_content_word_are_not_asked():
    assert informative("Hilda", ("Sourdough starter", "Sourdough starter"))
    assert not informative("sourdough starter", ("Sourdough starter",))
    assert not informative("how do I", ("Note",))
    assert not informative("2024", ("Note",))


def test_alias_questions_hold_out_the_aliases_column():
    chunks = [chunk("vault/Sourdough starter.md", "Sourdough starter", aliases=("Hilda", "sourdough starter")),
              chunk("vault/Sourdough starter.md", "Sourdough starter > Feeding", aliases=("Hilda", "sourdough starter"), n=1)]
    questions = alias_questions(chunks)
    assert [(q.text, q.doc_key, q.hold_out.columns) for q in questions] == [
        ("Hilda", "vault/Sourdough starter.md", ("aliases",))]


def test_link_questions_name_the_target_and_leave_the_linking_note_out():
    notes = {"vault/Home.md": "See [[Coffee/Pour-over brewing|my V60 recipe]], [[Backups|Backups]], "
                              "![[Backups|embedded]] and [[Nowhere|lost text]].",
             "vault/Coffee/Pour-over brewing.md": "[[Pour-over brewing|this very recipe]]"}
    names = {"pour-over brewing": "vault/Coffee/Pour-over brewing.md", "backups": "vault/Homelab/Backups.md",
             "home": "vault/Home.md"}
    questions = link_questions(notes, names)
    assert [(q.text, q.doc_key, q.hold_out.docs) for q in questions] == [
        ("my V60 recipe", "vault/Coffee/Pour-over brewing.md", frozenset({"vault/Home.md"}))]


def test_heading_questions_use_headings_that_name_one_section_only():
    chunks = [chunk("vault/a.md", "A > Feeding schedule"), chunk("vault/b.md", "B > Examples"),
              chunk("vault/c.md", "C > Examples"), chunk("vault/c.md", "C")]
    assert [(q.text, q.doc_key) for q in heading_questions(chunks)] == [("Feeding schedule", "vault/a.md")]


def test_heading_hold_out_re_embeds_the_section_without_its_heading():
    chunks = [chunk("vault/a.md", "A > Feeding schedule", "twice a day", n=0),
              chunk("vault/a.md", "A > Feeding schedule > Winter", "once a day", n=1),
              chunk("vault/a.md", "A > Other", "unrelated", n=2)]
    seen: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return [[float(len(t))] for t in texts]

    question = without_heading(heading_questions(chunks)[0], chunks, embed)
    assert seen == ["A\ntwice a day", "A > Winter\nonce a day"]
    assert set(question.hold_out.vectors) == {"vault/a.md#0", "vault/a.md#1"} and question.hold_out.columns == ("heading",)


def test_hit_and_rank_count_notes_not_chunks():
    hits = [Hit(chunk("vault/x.md", "X", n=i), 1.0, i + 1) for i in range(3)] + [Hit(chunk("vault/y.md", "Y"), 1.0, 4)]
    assert hit_and_rank(hits, "vault/y.md") == (True, 0.5)
    assert hit_and_rank(hits, "vault/z.md") == (False, 0.0)


def test_best_threshold_separates_the_two_groups():
    assert best_threshold([0.6, 0.7, 0.8], [0.1, 0.2, 0.3]) == pytest.approx(0.45)
    assert 0.3 < best_threshold([0.35, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4]) < 0.7


@pytest.fixture(scope="module")
def sample(tmp_path_factory, real_embedder):
    return indexed_sample(tmp_path_factory.mktemp("self-eval"), real_embedder)


def test_a_held_out_column_is_not_searched(sample):
    found = sample.retriever.search("PragProg", k=3, mode="keyword")
    assert found and found[0].chunk.doc_key == "vault/Reading/The Pragmatic Programmer.md"  # only its alias says so
    assert sample.retriever.search("PragProg", k=3, mode="keyword", hold_out=HoldOut(columns=("aliases",))) == []


def test_held_out_vectors_replace_the_stored_ones(sample):
    target = sample.retriever.search("Feeding schedule", k=1, mode="dense")[0]
    far = -np.asarray(sample.query_embedder.embed(["Feeding schedule"])[0])
    moved = sample.retriever.search("Feeding schedule", k=50, mode="dense",
                                    hold_out=HoldOut(vectors={target.chunk.id: far.tolist()}))
    assert target.chunk.id not in [h.chunk.id for h in moved[:5]]
    assert sample.retriever.search("Feeding schedule", k=1, mode="dense", hold_out=HoldOut(docs=frozenset(
        {target.chunk.doc_key})))[0].chunk.doc_key != target.chunk.doc_key


def test_eval_self_on_the_sample_vault(sample):
    c = sample.config
    out = CliRunner().invoke(main, ["--vault", str(c.vault), "--inbox", str(c.inbox), "--index", str(c.index_dir),
                                    "eval", "--self", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert all(report["questions"][kind] > 0 for kind in ("alias", "link", "heading"))
    overall = {f["mode"]: f for f in report["figures"] if f["group"] == "all"}
    assert set(overall) == {"hybrid", "dense", "keyword"}
    assert overall["hybrid"]["questions"] == sum(report["questions"].values())
    assert overall["hybrid"]["hit5"] >= 0.5  # a small vault whose labels mostly point somewhere findable
    abstention = report["abstention"]
    assert 0 < abstention["suggested_min_similarity"] < 1
    assert abstention["answered_at_suggested"] + abstention["abstained_at_suggested"] >= \
        abstention["answered_at_current"] + abstention["abstained_at_current"]
    assert any(f["group"].startswith("type:") for f in report["figures"])


def test_eval_without_self_or_a_dataset_is_a_usage_error(sample):
    c = sample.config
    out = CliRunner().invoke(main, ["--vault", str(c.vault), "--index", str(c.index_dir), "eval", "--queries",
                                    str(c.vault / "Home.md")])
    assert out.exit_code == 2 and "give --self, or all three of --corpus, --queries and --qrels" in out.output


@needs_shared()
def test_eval_self_on_the_obsidian_help_vault(help_kb):
    report = help_kb.self_evaluate(("hybrid",), limit=30)
    print(f"\n[eval --self, obsidian-help] {report.questions}, " + ", ".join(
        f"{f.group} hit@5={f.hit5:.3f} MRR@10={f.mrr10:.3f}" for f in report.figures if f.group in ("all", "alias", "link", "heading"))
        + f"; threshold {report.threshold}")
    assert sum(report.questions.values()) >= 60
    assert next(f for f in report.figures if f.group == "all").hit5 >= 0.6

"""Metrics against hand-computed values and against ranx; the eval pipeline on a tiny BEIR dataset."""

import json
import math
import random

import pytest
from click.testing import CliRunner

from conftest import HashEmbedder
from pai_kb.cli import main
from pai_kb.config import load_config
from pai_kb.evaluation import mean_metric, mrr_at, ndcg_at, percentile, read_qrels, recall_at, run_eval
from pai_kb.kb import KnowledgeBase

QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d9": 1}}
RUN = {"q1": ["d3", "d2", "d1"], "q2": ["d4", "d5"]}


def test_hand_computed_values():
    # q1: relevant at ranks 1 and 3; ideal has them at 1 and 2.
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(RUN["q1"], QRELS["q1"], 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(RUN["q1"], QRELS["q1"], 2) == pytest.approx(1 / idcg)
    assert recall_at(RUN["q1"], QRELS["q1"], 2) == 0.5 and recall_at(RUN["q1"], QRELS["q1"], 3) == 1.0
    assert mrr_at(["x", "d1"], QRELS["q1"], 10) == 0.5 and mrr_at(["x", "d1"], QRELS["q1"], 1) == 0.0
    assert mean_metric(ndcg_at, RUN, QRELS, 10) == pytest.approx((dcg / idcg + 0) / 2)
    assert mean_metric(recall_at, {}, QRELS, 10) == 0.0  # a query with no results counts as zero


def test_percentile():
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile(list(range(1, 101)), 95) == 95


def test_agrees_with_ranx_on_random_runs():
    import ranx  # a dev dependency, imported here because its numba start-up is slow
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels = {f"q{q}": {d: rng.choice([1, 2]) for d in rng.sample(docs, rng.randint(1, 6))} for q in range(30)}
    run = {q: rng.sample(docs, 25) for q in qrels}
    ranx_run = ranx.Run({q: {d: 100.0 - i for i, d in enumerate(ranking)} for q, ranking in run.items()})
    ranx_qrels = ranx.Qrels(qrels)
    got = ranx.evaluate(ranx_qrels, ranx_run, ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
    assert mean_metric(ndcg_at, run, qrels, 10) == pytest.approx(got["ndcg@10"], abs=1e-9)
    assert mean_metric(recall_at, run, qrels, 10) == pytest.approx(got["recall@10"], abs=1e-9)
    assert mean_metric(recall_at, run, qrels, 100) == pytest.approx(got["recall@100"], abs=1e-9)
    assert mean_metric(mrr_at, run, qrels, 10) == pytest.approx(got["mrr@10"], abs=1e-9)


@pytest.fixture
def tiny_beir(tmp_path):
    corpus = [
        {"_id": "c1", "title": "Sourdough", "text": "A sourdough starter is fed flour and water daily."},
        {"_id": "c2", "title": "Espresso", "text": "Espresso extraction depends on grind size and dose."},
        {"_id": "c3", "title": "Backups", "text": "Follow the 3-2-1 backup rule with restic snapshots."},
        {"_id": "c/4", "title": "", "text": "Pi-hole blocks advertising domains at the DNS level."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    queries = [{"_id": "1", "text": "feeding a sourdough starter"}, {"_id": "2", "text": "restic backup rule"},
               {"_id": "3", "text": "DNS ad blocking"}, {"_id": "4", "text": "unjudged query"}]
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc1\t1\n2\tc3\t1\n3\tc/4\t1\n")
    return tmp_path


def test_read_qrels_skips_header(tiny_beir):
    assert read_qrels(tiny_beir / "qrels.tsv") == {"1": {"c1": 1}, "2": {"c3": 1}, "3": {"c/4": 1}}


def test_run_eval_end_to_end_and_reuses_index(tiny_beir):
    embedder = HashEmbedder()

    def factory(vault, index_dir):
        return KnowledgeBase(load_config({"vault": vault, "index_dir": index_dir}, env={}),
                             embedder=embedder)

    paths = [tiny_beir / n for n in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]
    figures, judged = run_eval(factory, *paths, tiny_beir / "ix", ["keyword", "dense", "hybrid"])
    assert judged == 3 and [f.mode for f in figures] == ["keyword", "dense", "hybrid"]
    assert figures[0].ndcg10 == 1.0 and figures[0].mrr10 == 1.0  # each query names its document's words
    assert all(f.recall100 == 1.0 and f.p50_ms > 0 for f in figures)
    embedder.embedded.clear()
    run_eval(factory, *paths, tiny_beir / "ix", ["keyword"])
    assert embedder.embedded == []  # the corpus notes were left untouched, so nothing was re-embedded


def test_eval_command_json(tiny_beir):
    result = CliRunner().invoke(main, ["eval", "--corpus", str(tiny_beir / "corpus.jsonl"), "--queries",
                                       str(tiny_beir / "queries.jsonl"), "--qrels", str(tiny_beir / "qrels.tsv"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["queries"] == 3 and {m["mode"] for m in data["modes"]} == {"hybrid", "dense", "keyword"}
    assert all(m["recall100"] == 1.0 and 0 < m["ndcg10"] <= 1 for m in data["modes"])


def test_eval_command_bad_file_is_one_line(tmp_path, tiny_beir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["eval", "--corpus", str(bad), "--queries", str(tiny_beir / "queries.jsonl"),
                                       "--qrels", str(tiny_beir / "qrels.tsv")])
    assert result.exit_code == 1 and "bad.jsonl: cannot read BEIR jsonl" in result.stderr

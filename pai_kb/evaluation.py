"""Standard retrieval figures on a BEIR-format dataset, for every search mode in one run.

The corpus is written out as one markdown note per document and indexed through the normal pipeline,
so the figures measure exactly what `pai-kb search` does. Metrics are the usual trec_eval definitions
(linear gain nDCG, binary recall, reciprocal rank); the tests check them against ranx.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

from pai_kb.errors import ConfigError

if TYPE_CHECKING:
    from pai_kb.kb import KnowledgeBase

__all__ = ["ModeFigures", "mean_metric", "mrr_at", "ndcg_at", "percentile", "read_qrels", "recall_at", "run_eval",
           "token_f1"]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]  # query id -> ranked document ids
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ModeFigures:
    """Retrieval figures of one search mode: nDCG@10, recall@10, recall@100, MRR@10 (fractions 0-1), and
    median and 95th-percentile query latency in milliseconds."""
    mode: str
    ndcg10: float
    recall10: float
    recall100: float
    mrr10: float
    p50_ms: float
    p95_ms: float


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """nDCG@k of `ranking` against graded judgements (doc id -> grade), 0-1; 0 when nothing is relevant."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Share (0-1) of the relevant documents (grade > 0) within the first `k` of `ranking`; 0 when none is."""
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """1/rank of the first relevant document (grade > 0) within the first `k`, else 0."""
    for i, doc in enumerate(ranking[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def mean_metric(metric: Callable[[Sequence[str], Mapping[str, int], int], float], run: Run, qrels: Qrels,
                k: int) -> float:
    """Averaged over every query that has judgements; a query with no results scores 0."""
    scores = [metric(run.get(q, []), rel, k) for q, rel in qrels.items()]
    return sum(scores) / len(scores) if scores else 0.0


# CJK text has no spaces: each ideograph or kana counts as a token, as is usual in CJK evaluation.
_TOKEN = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]|[^\W\u3040-\u30ff\u4e00-\u9fff]+", re.UNICODE)


def token_f1(got: str, want: str) -> float:
    """Bag-of-tokens F1 of an extraction against a reference text."""
    from collections import Counter

    a = Counter(t.lower() for t in _TOKEN.findall(got))
    b = Counter(t.lower() for t in _TOKEN.findall(want))
    common = sum((a & b).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank `pct`-th percentile (0-100) of non-empty `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


# -- BEIR files ---------------------------------------------------------------------------------
def read_jsonl(path: Path) -> Iterable[dict]:
    """The JSON objects of a BEIR `.jsonl` file, one per non-blank line, lazily. Raises ConfigError when the
    file cannot be read or a line is not JSON."""
    try:
        with path.open(encoding="utf-8") as handle:
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    yield json.loads(line)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read BEIR jsonl ({exc}); check the file") from exc


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels: query id -> document id -> grade, from a TSV with an optional `query-id` header. Raises
    ConfigError when the file cannot be read or a grade is not an integer."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle, delimiter="\t"):
                if len(row) < 3 or row[0] == "query-id":
                    continue
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read qrels TSV ({exc}); expected query-id, corpus-id, score") from exc
    return qrels


def write_corpus(corpus: Path, folder: Path) -> dict[str, str]:
    """One note per document; returns note path -> document id. Unchanged notes keep their mtime, so a
    second eval on the same --index re-embeds nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for doc in read_jsonl(corpus):
        doc_id = str(doc["_id"])
        name = f"{_SAFE.sub('_', doc_id)}.md"
        title = str(doc.get("title") or "").replace("\n", " ")
        body = f"---\ntitle: {json.dumps(title or doc_id)}\n---\n\n{doc.get('text', '')}\n"
        target = folder / name
        if not target.exists() or target.read_text(encoding="utf-8") != body:
            target.write_text(body, encoding="utf-8")
        paths[name] = doc_id
    return paths


def evaluate(search: Callable[[str, str], list[str]], queries: Mapping[str, str], qrels: Qrels,
             modes: Sequence[str]) -> list[ModeFigures]:
    """`search(query, mode)` returns ranked document ids (at least 100 where available)."""
    judged = {q: t for q, t in queries.items() if q in qrels}
    figures = []
    for mode in modes:
        run: dict[str, list[str]] = {}
        latencies = []
        for qid, text in judged.items():
            start = time.perf_counter()
            run[qid] = search(text, mode)
            latencies.append((time.perf_counter() - start) * 1000)
        figures.append(ModeFigures(
            mode, mean_metric(ndcg_at, run, qrels, 10), mean_metric(recall_at, run, qrels, 10),
            mean_metric(recall_at, run, qrels, 100), mean_metric(mrr_at, run, qrels, 10),
            statistics.median(latencies) if latencies else 0.0, percentile(latencies, 95) if latencies else 0.0))
    return figures


def run_eval(kb_factory: Callable[[Path, Path], "KnowledgeBase"], corpus: Path, queries: Path, qrels: Path,
             index_dir: Path, modes: Sequence[str], progress: Callable[[int, int], None] | None = None
             ) -> tuple[list[ModeFigures], int]:
    """Write the corpus as notes in `index_dir/corpus` and index them in `index_dir/index` (reusing what
    is already there: the two sit side by side, never one inside the other), then evaluate each mode.
    Returns the figures and the number of judged queries."""
    vault = index_dir / "corpus"
    ids = write_corpus(corpus, vault)
    kb = kb_factory(vault, index_dir / "index")
    try:
        kb.index(progress=progress)
        texts = {str(q["_id"]): str(q["text"]) for q in read_jsonl(queries)}
        judgements = read_qrels(qrels)

        def search(text: str, mode: str) -> list[str]:
            return [ids[h.chunk.path] for h in kb.search(text, k=100, mode=mode, per_note=1) if h.chunk.path in ids]

        return evaluate(search, texts, judgements, modes), sum(q in judgements for q in texts)
    finally:
        kb.close()

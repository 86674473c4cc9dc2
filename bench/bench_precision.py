"""float32 against int8 (`embedding.precision`), in one run: what the int8 copy of the model costs in
retrieval and what it saves in indexing time.

- SciFact (BEIR: 300 test queries over 5,183 abstracts) nDCG@10, hybrid and dense, through
  `evaluation.run_eval`, exactly as `pai-kb eval --corpus ... --queries ... --qrels ...` runs it.
- The Obsidian Help vault: the 40 labelled questions of `tests/test_obsidian_help.py` (hit@5, MRR@10, one
  passage per note) and the vault's own questions (`pai-kb eval --self`, `KnowledgeBase.self_evaluate`).
- A full index of the Help vault at each precision against sentence-transformers' own encode of the same
  chunk texts, as `bench_index.py` measures it: models loaded, exported and quantised beforehand, runs
  interleaved so both precisions see the same machine.

Each int8 figure is printed beside its float32 baseline from the same run. `--quick` evaluates SciFact on a
cut corpus (every judged abstract plus 1,000 others) instead of all of it, and says so.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import DATA, HEADER, need_data, row, timed  # noqa: E402
from pai_kb.config import load_config  # noqa: E402
from pai_kb.embeddings import LocalModel, SentenceTransformerEmbedder  # noqa: E402
from pai_kb.evaluation import read_qrels, run_eval  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402
from test_obsidian_help import QUESTIONS, recall_and_mrr  # noqa: E402

SCIFACT = DATA / "scifact"
HELP = DATA / "obsidian-help" / "en"
MODES = ("hybrid", "dense")
# The rule of issue #24: int8 becomes the default only if it loses at most this much SciFact hybrid nDCG@10.
MAX_LOSS = 0.005


def main(runs: int = 2, quick: bool = False) -> list[str]:
    need_data()
    with ExitStack() as stack:
        models = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        embedders = {p: LocalModel("all-MiniLM-L6-v2", models, precision=p) for p in ("float32", "int8")}
        for embedder in embedders.values():
            embedder.embed(["export, quantise and warm up the model"])
        reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        reference.embed(["warm up the model"])

        index_s, encode_s, help_kbs, chunks = index_times(stack, embedders, reference, runs)
        help_figures = {p: _help_figures(kb) for p, kb in help_kbs.items()}
        for kb in help_kbs.values():
            kb.close()
        corpus = SCIFACT / "corpus.jsonl"
        if quick:
            corpus = _cut_corpus(Path(stack.enter_context(tempfile.TemporaryDirectory())), 1000)
        scifact = {p: _scifact(stack, corpus, e) for p, e in embedders.items()}

    st = statistics.median(encode_s)
    pipe = {p: statistics.median(v) for p, v in index_s.items()}
    f, q = scifact["float32"], scifact["int8"]
    loss = f["hybrid"] - q["hybrid"]
    verdict = f"int8 {-loss:+.4f}: " + ("int8 may be the default" if loss <= MAX_LOSS else "float32 stays the default")
    cut = " (cut: judged + 1,000 abstracts)" if quick else ""
    lines = [
        row(f"SciFact nDCG@10 hybrid, int8{cut}", q["hybrid"], "", f["hybrid"], f"vs float32; {verdict}"),
        row(f"SciFact nDCG@10 dense, int8{cut}", q["dense"], "", f["dense"], "vs float32"),
        row("SciFact eval (index + queries), int8, s", q["seconds"], "s", f["seconds"], "vs float32"),
    ]
    for name, key in (("40 questions", "own"), ("self-eval (all)", "self")):
        for mode in MODES:
            for metric, i in (("hit@5", 0), ("MRR@10", 1)):
                lines.append(row(f"Help {name} {metric} {mode}, int8", help_figures["int8"][key][mode][i], "",
                                 help_figures["float32"][key][mode][i], "vs float32"))
    lines += [
        row(f"full index obsidian-help ({chunks} chunks), int8, s", pipe["int8"], "s", st,
            "≤ 0.5x sentence-transformers"),
        row("full index obsidian-help, float32, s", pipe["float32"], "s", st, "vs sentence-transformers"),
        row("  int8 index against float32 index, s", pipe["int8"], "s", pipe["float32"], "vs float32"),
        row("  sentence-transformers encode, same chunks, s", st, "s"),
    ]
    return lines


def index_times(stack: ExitStack, embedders: dict[str, LocalModel], reference: SentenceTransformerEmbedder,
                runs: int) -> tuple[dict[str, list[float]], list[float], dict[str, KnowledgeBase], int]:
    """Seconds of each full index of the Help vault per precision, and of sentence-transformers' encode of
    the same chunk texts, `runs` times, interleaved; the last run's indexes (left open, in folders `stack`
    removes) and the number of chunks."""
    index_s: dict[str, list[float]] = {p: [] for p in embedders}
    encode_s: list[float] = []
    kbs: dict[str, KnowledgeBase] = {}
    texts: list[str] = []
    for run in range(runs):
        for precision, embedder in embedders.items():
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = load_config({"vault": HELP, "inbox": tmp / "none", "index_dir": tmp / "ix"}, env={})
            kb = KnowledgeBase(config, embedder=embedder)
            index_s[precision].append(timed(kb.index))
            texts = [f"{c.heading}\n{c.text}" for c in kb.manifest.all_chunks()]
            if run == runs - 1:
                kbs[precision] = kb  # the last run's index answers the quality questions
            else:
                kb.close()
        encode_s.append(timed(lambda: reference.embed(texts)))
    return index_s, encode_s, kbs, len(texts)


def _help_figures(kb: KnowledgeBase) -> dict[str, dict[str, tuple[float, float]]]:
    """hit@5 and MRR@10 per mode: the 40 labelled questions, and the vault's own (all kinds together)."""
    own = {mode: recall_and_mrr(kb, mode) for mode in MODES}
    report = kb.self_evaluate(MODES)
    vault_own = {f.mode: (f.hit5, f.mrr10) for f in report.figures if f.group == "all"}
    return {"own": own, "self": vault_own}


def _scifact(stack: ExitStack, corpus: Path, embedder: LocalModel) -> dict[str, float]:
    """nDCG@10 per mode and the seconds the whole evaluation took, as `pai-kb eval` computes them."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))

    def make(vault: Path, index_dir: Path) -> KnowledgeBase:
        config = load_config({"vault": vault, "index_dir": index_dir}, env={})
        return KnowledgeBase(config.replace(inbox=None, exclude=()), embedder=embedder)

    result: list = []
    seconds = timed(lambda: result.extend(run_eval(make, corpus, SCIFACT / "queries.jsonl",
                                                   SCIFACT / "qrels" / "test.tsv", folder, MODES)[0]))
    return {**{fig.mode: fig.ndcg10 for fig in result}, "seconds": seconds}


def _cut_corpus(folder: Path, others: int) -> Path:
    """Every abstract a test query judges, and the first `others` of the rest."""
    judged = {doc for rel in read_qrels(SCIFACT / "qrels" / "test.tsv").values() for doc in rel}
    lines, extra = [], 0
    for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if str(json.loads(line)["_id"]) in judged:
            lines.append(line)
        elif extra < others:
            lines.append(line)
            extra += 1
    target = folder / "corpus.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main(quick="--quick" in sys.argv[1:])))

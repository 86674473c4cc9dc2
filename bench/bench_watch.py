"""Watcher latency with the real model: from a note's save to its new text being searchable (p50 and
p95 over 50 edits), and a burst of 1,000 new small notes (seconds until all are searchable) against the
model alone embedding the same chunks, in the same run."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import HEADER, ROOT, row  # noqa: E402
from pai_kb.config import load_config  # noqa: E402
from pai_kb.embeddings import SentenceTransformerEmbedder  # noqa: E402
from pai_kb.evaluation import percentile  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402
from pai_kb.watch import Watcher  # noqa: E402


def searchable(kb: KnowledgeBase, word: str) -> bool:
    return bool(kb.manifest.keyword_search(word, 1))


def wait(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("watcher did not catch up")
        time.sleep(0.01)


def main(edits: int = 50, burst: int = 1000) -> list[str]:
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    embedder.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(ROOT / "vault", vault)
        config = load_config({"vault": vault, "inbox": Path(tmp) / "inbox", "index_dir": Path(tmp) / "ix"}, env={})
        kb = KnowledgeBase(config, embedder=embedder)
        batches: list[int] = []
        watcher = Watcher(kb, on_batch=lambda report, ms: batches.append(ms))
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        wait(lambda: batches)
        note = vault / "Running plan.md"
        original = note.read_text()
        latencies = []
        for i in range(edits):
            word = f"edit{i}marker"
            start = time.perf_counter()
            note.write_text(original + f"\n\nToday's change mentions {word}.\n")
            wait(lambda: searchable(kb, word))
            latencies.append(time.perf_counter() - start)
        folder = vault / "burst"
        folder.mkdir()
        texts = [f"# Burst {i}\n\nA small note number {i} about topic burstword{i}." for i in range(burst)]
        start = time.perf_counter()
        for i, text in enumerate(texts):
            (folder / f"b{i}.md").write_text(text)
        wait(lambda: searchable(kb, f"burstword{burst - 1}") and kb.manifest.counts()[0] >= 17 + burst)
        burst_s = time.perf_counter() - start
        watcher.stop()
        thread.join()
        texts = [f"{c.heading}\n{c.text}" for c in kb.manifest.all_chunks() if c.doc_key.startswith("vault/burst/")]
        model_s = min(timed_embed(embedder, texts) for _ in range(2))
    return [
        row("save → searchable, single edit, p50, s", statistics.median(latencies), "s"),
        row("save → searchable, single edit, p95, s", percentile(latencies, 95), "s", None, "≤ 1.5 s"),
        row(f"burst of {burst} notes until all searchable, s", burst_s, "s", model_s),
        row("  model-only embedding of the same chunks, s", model_s, "s"),
    ]


def timed_embed(embedder: SentenceTransformerEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed(texts)
    return time.perf_counter() - start


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

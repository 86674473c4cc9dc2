"""Search latency at about 100,000 chunks, two ways, with synthetic vector values (bench_noop's
approach: the HNSW graph has the real size) and the real ONNX query encoder:

- real text: the obsidian-hub vault copied three times into one vault (102,000 chunks), so word
  frequencies keep their real, Zipf-like shape;
- worst case: 20,000 generated notes whose words are drawn uniformly from a ~1,500-word vocabulary, so
  every query word is in ~8% of chunks and FTS5 must score a third of the index for each query."""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_noop import SyntheticVectors  # noqa: E402
from common import DATA, HEADER, ROOT, need_data, row  # noqa: E402
from pai_kb.config import load_config  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402

QUERIES = ["how do I back up my notes", "espresso grind size and dose", "home network vlan for iot devices",
           "planning fallacy outside view", "sourdough starter feeding schedule"] * 10


def words() -> list[str]:
    text = " ".join(p.read_text() for p in (ROOT / "vault").rglob("*.md"))
    return sorted({w.lower() for w in text.split() if w.isalpha() and len(w) > 2})


def write_vault(folder: Path, notes: int, rng: random.Random) -> None:
    vocab = words()
    for n in range(notes):
        sections = "\n\n".join(f"## Part {s}\n\n" + " ".join(rng.choices(vocab, k=120)) for s in range(5))
        path = folder / f"d{n // 1000:02d}" / f"note {n}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {n}\n\n{sections}\n")


def real_text_vault(folder: Path) -> None:
    for copy in range(3):
        shutil.copytree(DATA / "obsidian-hub", folder / f"copy{copy}")


def measure(name: str, fill: Callable[[Path], None]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        vault.mkdir()
        fill(vault)
        config = load_config({"vault": vault, "inbox": Path(tmp) / "none", "index_dir": Path(tmp) / "ix"}, env={})
        kb = KnowledgeBase(config, embedder=SyntheticVectors("all-MiniLM-L6-v2"))
        report = kb.index()
        figures = {}
        for mode in ("hybrid", "dense", "keyword"):
            kb.search(QUERIES[0], mode=mode)
            times = []
            for query in QUERIES:
                start = time.perf_counter()
                kb.search(query, k=10, mode=mode)
                times.append((time.perf_counter() - start) * 1000)
            figures[mode] = statistics.median(times)
        kb.close()
    n = report.chunks_total
    return [row(f"search p50 at {n:,} chunks, {name}, hybrid, ms", figures["hybrid"], "ms", None, "≤ 30 ms"),
            row(f"  {name}: dense, ms", figures["dense"], "ms"), row(f"  {name}: keyword, ms", figures["keyword"], "ms")]


def main() -> list[str]:
    need_data()
    rng = random.Random(7)
    return (measure("real text", real_text_vault)
            + measure("uniform words (worst case)", lambda folder: write_vault(folder, 20_000, rng)))


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

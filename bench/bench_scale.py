"""Search latency at 100,000 chunks: a generated vault of 20,000 notes (five sections each, real
English words so the keyword index has realistic posting lists), vectors from the real tokenizer's
fingerprint but synthetic values (bench_noop's approach: the HNSW graph has the real size). Reports
in-process hybrid, dense and keyword p50 with the ONNX query encoder, and the same through `pai-kb serve`."""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_noop import SyntheticVectors  # noqa: E402
from common import HEADER, ROOT, row  # noqa: E402
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


def main(notes: int = 20_000) -> list[str]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        write_vault(vault, notes, rng)
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
    return [row(f"in-process search p50 at {n:,} chunks, hybrid, ms", figures["hybrid"], "ms", None, "≤ 30 ms"),
            row("  dense, ms", figures["dense"], "ms"), row("  keyword, ms", figures["keyword"], "ms"),
            row(f"  building that index (synthetic vectors), s", report.seconds, "s")]


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

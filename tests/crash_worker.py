"""Run one `index` in its own process, so tests can kill -9 it at any moment.

usage: crash_worker.py VAULT INDEX_DIR SECONDS_PER_TEXT [--rebuild] [--chroma URL]

Prints "embedding" when the model is first called, so a test can kill it mid-run without guessing.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import HashEmbedder  # noqa: E402
from pai_kb.config import load_config  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402


class SlowEmbedder(HashEmbedder):
    """Stretches a run out so a kill lands in the middle of it, as a real model's would."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.started = False

    def embed(self, texts):
        if not self.started:
            self.started = True
            print("embedding", flush=True)
        time.sleep(self.delay * len(texts))
        return super().embed(texts)


if __name__ == "__main__":
    vault, index_dir, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    chroma = sys.argv[sys.argv.index("--chroma") + 1] if "--chroma" in sys.argv else None
    config = load_config({"vault": vault, "inbox": vault / "_no_inbox", "index_dir": index_dir}, env={})
    config = config.replace(chroma_url=chroma)
    report = KnowledgeBase(config, embedder=SlowEmbedder(delay)).index(rebuild="--rebuild" in sys.argv)
    print(report.chunks_total)

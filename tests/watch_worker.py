"""Run a watcher in its own process (with the test embedder), so tests can signal or kill it.

usage: watch_worker.py VAULT INBOX INDEX_DIR SECONDS_PER_TEXT
"""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from crash_worker import SlowEmbedder  # noqa: E402
from pai_kb.config import load_config  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402
from pai_kb.watch import Watcher, WatchSettings  # noqa: E402

class AnnouncingEmbedder(SlowEmbedder):
    """Says on stdout when it starts embedding, so a test signals only once a batch is in flight."""

    def embed(self, texts):
        print("embedding", flush=True)
        return super().embed(texts)


if __name__ == "__main__":
    vault, inbox, index_dir, delay = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    config = load_config({"vault": vault, "inbox": inbox, "index_dir": index_dir}, env={})
    kb = KnowledgeBase(config, embedder=AnnouncingEmbedder(delay))
    watcher = Watcher(kb, WatchSettings(debounce_s=0.1, max_delay_s=0.5),
                      on_batch=lambda report, ms: print(f"batch {report.chunks_total}", flush=True))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: watcher.interrupt())
    print("started", flush=True)
    watcher.run()
    print("stopped", flush=True)

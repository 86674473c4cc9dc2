"""/search latency while a flood of /ask waits on a slow model, against /search with no /ask running,
both measured in the same run on the same `pai-kb serve` (the sample vault, the real model).

The model is tests/fake_llm.py (a real OpenAI-compatible HTTP server) holding each answer for --delay
seconds. The flood is --asks concurrent /ask; the server runs `server.ask_workers` of them, queues
`server.ask_queue` more and refuses the rest with 503 + Retry-After. /search is timed only while every
answer slot is taken (the model has received ask_workers requests and answered none).

    python bench/bench_ask_pool.py                       # 100 asks on a 5 s model (about a minute)
    python bench/bench_ask_pool.py --asks 100 --delay 30 # the issue's figure
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx  # noqa: E402

from common import HEADER, PAI, ROOT, row  # noqa: E402
from fake_llm import FakeLLM, Reply  # noqa: E402

QUESTION = "how long should a pour-over brew take?"
SEARCHES = 40


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def timed_searches(url: str, n: int) -> list[float]:
    """Milliseconds of `n` sequential /search requests, each checked to succeed."""
    out = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            started = time.perf_counter()
            client.get(f"{url}/search", params={"q": f"pour-over brew time {i % 5}", "k": 10}).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def serving(base: list[str], index: Path, llm_url: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PAI_KB_LLM_BASE_URL": llm_url, "PAI_KB_LLM_MODEL": "fake"}
    port = 8700 + os.getpid() % 90
    server = subprocess.Popen([*base, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (index / "server.json").exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("pai-kb serve did not start")
        time.sleep(0.1)
    return server, json.loads((index / "server.json").read_text())["url"]


def main(asks: int = 100, delay: float = 5.0) -> list[str]:
    llm = FakeLLM(default=Reply("Brew for about three minutes [1].", delay=delay)).start()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "ix"
        base = [*PAI, "--vault", str(ROOT / "vault"), "--inbox", str(ROOT / "ingest"), "--index", str(index)]
        subprocess.run([*base, "index"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server, url = serving(base, index, llm.url)
        try:
            timed_searches(url, 5)  # warm the model and the connections
            baseline = timed_searches(url, SEARCHES)
            with ThreadPoolExecutor(asks) as clients:
                flood = [clients.submit(httpx.post, f"{url}/ask", json={"question": QUESTION}, timeout=delay * 60)
                         for _ in range(asks)]
                deadline = time.monotonic() + 60
                while len(llm.requests) == 0 or sum(f.done() for f in flood) == 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the asks never reached the model")
                    time.sleep(0.01)
                answered_before = len(llm.requests)
                started = time.monotonic()
                during = timed_searches(url, SEARCHES)
                saturated = time.monotonic() - started < delay
                refused = [f.result() for f in flood if f.done()]
                busy = sum(r.status_code == 503 and "retry-after" in r.headers for r in refused)
                server.send_signal(signal.SIGTERM)  # the rest need not be waited for
                server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
            llm.stop()
    note = "" if saturated else " (the model answered during the measurement: raise --delay)"
    return [row(f"/search p50 during {asks} /ask on a {delay:g} s model, ms", statistics.median(during), "ms",
                statistics.median(baseline)),
            row(f"/search p95 during {asks} /ask on a {delay:g} s model, ms", percentile(during, 0.95), "ms",
                percentile(baseline, 0.95), "≤ 200 ms" + note),
            row("  baseline: /search p50 with no /ask running, ms", statistics.median(baseline), "ms"),
            row("  /ask refused at once with 503 + Retry-After", busy, "req", None,
                f"model reached by {answered_before} at the start")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=100, help="concurrent /ask requests [100]")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds the fake model holds each answer [5]")
    args = parser.parse_args()
    print(HEADER)
    for line in main(args.asks, args.delay):
        print(line, flush=True)

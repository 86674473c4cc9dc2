"""`pai-kb context` as a hook runs it: a whole process fed a UserPromptSubmit event on stdin, on the indexed
Obsidian Help vault. Median and p95 cold (no server) and with `pai-kb serve` running, each beside the
baseline measured in the same run: a bare `python -c pass`, the floor of any Python hook."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import indexed_help_vault, need_data, row  # noqa: E402

EVENT = json.dumps({"session_id": "bench", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
                    "hook_event_name": "UserPromptSubmit", "prompt": "how do I give a note another name?"})
PORT = 8798


def hook_run(args: list[str]) -> float:
    """Wall seconds of one whole hook process; fails loudly unless it exits 0 with hook JSON."""
    start = time.perf_counter()
    done = subprocess.run(args, input=EVENT, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    if not done.stdout.startswith('{"hookSpecificOutput"'):
        raise RuntimeError(f"pai-kb context printed no context: {done.stderr.strip()[:200]}")
    return elapsed


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main(runs: int = 20) -> list[str]:
    need_data()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "ix"
        base = indexed_help_vault(tmp)
        floor = [hook_floor() for _ in range(runs)]
        cold = [hook_run([*base, "context", "--local"]) for _ in range(runs)]
        served = with_server(base, index, runs)
    f = statistics.median(floor)
    return [row("context hook, cold, median, s", statistics.median(cold), "s", f),
            row("context hook, cold, p95, s", p95(cold), "s", p95(floor), "≤ 1.5 s"),
            row("context hook, serve running, median, s", statistics.median(served), "s", f),
            row("context hook, serve running, p95, s", p95(served), "s", p95(floor), "≤ 0.25 s"),
            row("  baseline: python -c pass, median, s", f, "s")]


def hook_floor() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def with_server(base: list[str], index: Path, runs: int) -> list[float]:
    """Hook runs while `pai-kb serve` answers for the same index (started here, waited for, stopped)."""
    server = subprocess.Popen([*base, "serve", "--port", str(PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (index / "server.json").exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("pai-kb serve did not start")
            time.sleep(0.1)
        for _ in range(3):
            hook_run([*base, "context"])  # warm the server
        return [hook_run([*base, "context"]) for _ in range(runs)]
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    for line in main():
        print(line)

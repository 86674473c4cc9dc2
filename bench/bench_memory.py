"""Peak memory (RSS) of a whole `pai-kb index` process over the 6,571-note obsidian-hub vault with the real
model, from scratch. Baseline: the same process running `pai-kb status` (imports, config, no indexing).
Takes about ten minutes on 2 cores: 34,000 chunks go through the model."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import DATA, HEADER, PAI, need_data, row  # noqa: E402


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run in a fresh grandchild so RUSAGE_CHILDREN holds this process alone."""
    probe = ("import resource,subprocess,sys,time;t=time.time();subprocess.run(sys.argv[1:],check=True,"
             "stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, time.time()-t)")
    out = subprocess.run([sys.executable, "-c", probe, *args], check=True, capture_output=True, text=True).stdout
    mb, seconds = out.split()
    return float(mb), float(seconds)


def main() -> list[str]:
    need_data()
    vault = DATA / "obsidian-hub"
    with tempfile.TemporaryDirectory() as tmp:
        base = [*PAI, "--vault", str(vault), "--inbox", str(Path(tmp) / "none"), "--index", str(Path(tmp) / "ix")]
        idle, _ = peak_rss_mb([*base, "status"])
        peak, seconds = peak_rss_mb([*base, "index"])
    return [row("peak RSS, full index of obsidian-hub, MB", peak, "MB", idle, "< 1536 MB"),
            row("  wall time of that index, s", seconds, "s")]


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

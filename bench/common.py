"""Shared bits for the benchmarks: where the data is, medians, a table printer."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PAI = [sys.executable, "-m", "pai_kb"]


def need_data() -> None:
    if not DATA.is_dir():
        sys.exit(f"benchmarks need ../shared/data next to the project ({DATA} is missing)")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(timed(fn) for _ in range(runs))


def run_process(args: Sequence[str]) -> float:
    """Wall seconds of a whole process, output discarded; fails loudly if the command fails."""
    start = time.perf_counter()
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def indexed_help_vault(tmp: str) -> list[str]:
    """`pai-kb` with the options of the Obsidian Help vault indexed under `tmp` (indexes it first)."""
    base = [*PAI, "--vault", str(DATA / "obsidian-help" / "en"), "--inbox", str(Path(tmp) / "none"),
            "--index", str(Path(tmp) / "ix")]
    run_process([*base, "index"])
    return base


def row(name: str, value: float, unit: str, baseline: float | None = None, target: str = "") -> str:
    ratio = f"{value / baseline:6.2f}x" if baseline else "       "
    base = f"{baseline:10.3f}" if baseline is not None else " " * 10
    return f"{name:<44} {value:10.3f} {unit:<4} {base} {ratio}  {target}"


HEADER = f"{'figure':<44} {'value':>10} {'unit':<4} {'baseline':>10} {'ratio':>7}  target"

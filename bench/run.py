"""Run every benchmark and print one table (`make bench`). Figures are medians of several runs;
each row's baseline was measured in the same run, on the same machine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_ask_pool  # noqa: E402
import bench_audio  # noqa: E402
import bench_cold  # noqa: E402
import bench_context  # noqa: E402
import bench_extract  # noqa: E402
import bench_index  # noqa: E402
import bench_noop  # noqa: E402
import bench_pdf  # noqa: E402
import bench_scale  # noqa: E402
import bench_watch  # noqa: E402
from common import HEADER  # noqa: E402


def main() -> None:
    print(HEADER, flush=True)
    for bench in (bench_noop, bench_cold, bench_index, bench_watch, bench_extract, bench_pdf, bench_scale, bench_ask_pool,
                  bench_audio, bench_context):
        for line in bench.main():
            print(line, flush=True)


if __name__ == "__main__":
    main()

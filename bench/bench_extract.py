"""Main-text extraction quality on ../shared/data/webclips-readability: token F1 of each extractor's
text against the reference extraction (expected.html), per page, mean and worst. Used to choose the
HTML extractor; pai-kb's own loader is measured as `pai-kb`."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import lxml.html

sys.path.insert(0, str(Path(__file__).parent))
from common import DATA, HEADER, need_data, row  # noqa: E402
from pai_kb.evaluation import token_f1 as f1  # noqa: E402

def reference(page: Path) -> str:
    return lxml.html.fromstring((page / "expected.html").read_text(encoding="utf-8")).text_content()


def pai_kb_text(page: Path) -> str:
    from pai_kb.loaders import load_bytes

    doc = load_bytes((page / "source.html").read_bytes(), "inbox", f"{page.name}.html")
    return "\n".join(b.text for b in doc.blocks)


def trafilatura_text(page: Path) -> str:
    import trafilatura

    return trafilatura.extract((page / "source.html").read_bytes().decode("utf-8", "replace"),
                               output_format="markdown", include_tables=True, favor_recall=True) or ""


def readability_text(page: Path) -> str:
    from readability import Document

    html = Document((page / "source.html").read_bytes().decode("utf-8", "replace")).summary()
    return lxml.html.fromstring(html).text_content()


EXTRACTORS = {"pai-kb": pai_kb_text, "trafilatura": trafilatura_text, "readability-lxml": readability_text}


def scores(extract) -> dict[str, float]:
    pages = sorted(p for p in (DATA / "webclips-readability").iterdir() if p.is_dir())
    return {p.name: f1(extract(p), reference(p)) for p in pages}


def main(names: tuple[str, ...] = ("pai-kb",)) -> list[str]:
    need_data()
    lines = []
    for name in names:
        start = time.perf_counter()
        per_page = scores(EXTRACTORS[name])
        seconds = time.perf_counter() - start
        worst = min(per_page, key=per_page.get)
        lines.append(row(f"extraction F1 mean, {name}", statistics.mean(per_page.values()), "F1"))
        lines.append(row(f"  worst page: {worst}", per_page[worst], "F1"))
        lines.append(row(f"  seconds for {len(per_page)} pages", seconds, "s"))
    return lines


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main(tuple(sys.argv[1:]) or tuple(EXTRACTORS))))

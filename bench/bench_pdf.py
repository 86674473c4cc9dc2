"""PDF loading: wall milliseconds of `load_bytes` per PDF of 1, 20 and 200 pages of real Obsidian Help text
(laid out with fpdf2), median of several runs, with the PDF engine warm (how an index run meets its second
PDF). Baselines from the same run: the first PDF of a process, which starts the engine, and pypdf in-process
(pai-kb's loader before PDFium) when pypdf is installed (`pip install pypdf`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import DATA, HEADER, median_of, need_data, row  # noqa: E402
from pai_kb.loaders import load_bytes  # noqa: E402
from pai_kb.loaders.pdf import stop_engine  # noqa: E402

PAGES = (1, 20, 200)
RUNS = 7


def help_text(chars: int) -> list[str]:
    """Paragraphs of the Obsidian Help vault, latin-1 only (fpdf2's core fonts), about `chars` in all."""
    paragraphs: list[str] = []
    for note in sorted((DATA / "obsidian-help" / "en").rglob("*.md")):
        for part in note.read_text(encoding="utf-8").split("\n\n"):
            text = part.encode("latin-1", "ignore").decode("latin-1").strip()
            if len(text) > 80 and not text.startswith(("---", "|", "```", "!")):
                paragraphs.append(text)
                chars -= len(text)
                if chars <= 0:
                    return paragraphs
    return paragraphs


def make_pdf(pages: int, paragraphs: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    per_page = max(1, len(paragraphs) // pages)
    for n in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, "\n\n".join(paragraphs[n * per_page:(n + 1) * per_page])[:2600])
    out = io.BytesIO()
    pdf.output(out)
    return out.getvalue()


def pypdf_load(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def cold_ms(data: bytes) -> float:
    def first() -> None:
        stop_engine()
        load_bytes(data, "inbox", "x.pdf")

    return 1000 * median_of(first, RUNS)


def main() -> list[str]:
    need_data()
    paragraphs = help_text(2600 * max(PAGES))
    try:
        import pypdf  # noqa: F401
        has_pypdf = True
    except ImportError:
        has_pypdf = False
    lines = []
    for pages in PAGES:
        data, name = make_pdf(pages, paragraphs), f"PDF of {pages} page{'s' if pages > 1 else ''}"
        load_bytes(data, "inbox", "x.pdf")  # the engine is running from here
        warm = 1000 * median_of(lambda: load_bytes(data, "inbox", "x.pdf"), RUNS)
        lines.append(row(f"{name}, warm engine vs first PDF", warm, "ms", cold_ms(data)))
        if has_pypdf:
            lines.append(row(f"{name}, warm engine vs pypdf", warm, "ms",
                             1000 * median_of(lambda: pypdf_load(data), RUNS)))
    if not has_pypdf:
        lines.append("(pypdf is not installed: its baseline rows are left out)")
    return lines


if __name__ == "__main__":
    print(HEADER)
    print("\n".join(main()))

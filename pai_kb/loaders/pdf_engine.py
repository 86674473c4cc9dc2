"""The PDF engine's process: PDF bytes on stdin, one JSON object on stdout. It runs as a script, apart from
pai-kb, so that native PDFium code reading a hostile or broken file can only end its own process.

Output: {"pages": [text of page 1, ...], "metadata": {"Title": ..., ...}} or {"refused": "encrypted" |
"unreadable", "detail": str}. PDFium (pypdfium2) is Chromium's PDF engine. Its text keeps characters drawn
outside the page's box (the bounds below are wide), drops duplicates drawn on top of each other (fake bold),
and reads at most 32,767 characters of one string operand (its parser's limit)."""

import json
import resource
import sys

MEMORY_BYTES = 4 << 30  # a decompression bomb ends this process with MemoryError, not the machine
FAR = 1e9  # PDF units


def page_text(document, index: int) -> str:
    """The text of page `index` (0-based) of an open pypdfium2 document, wherever on the page it is drawn."""
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded(-FAR, -FAR, FAR, FAR)
        finally:
            textpage.close()
    finally:
        page.close()


def read(data: bytes) -> dict:
    """The answer (see the module doc) for the PDF `data`."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        locked = exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)
        return {"refused": "encrypted" if locked else "unreadable", "detail": str(exc)}
    try:
        return {"pages": [page_text(document, i) for i in range(len(document))],
                "metadata": document.get_metadata_dict()}
    except pdfium.PdfiumError as exc:
        return {"refused": "unreadable", "detail": str(exc)}
    finally:
        document.close()


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    json.dump(read(sys.stdin.buffer.read()), sys.stdout)

"""The PDF engine's process, apart from pai-kb, so that native PDFium code reading a hostile or broken file
can only end its own process. It runs as a script and serves one PDF after another.

Protocol, on stdin and stdout: each request is an 8-byte big-endian length and that many bytes of PDF; each
reply an 8-byte length and a JSON object, {"pages": [text of page 1, ...], "metadata": {"Title": ...}} or
{"refused": "encrypted" | "unreadable", "detail": str}. It exits with status 0 at the end of stdin or after
the idle seconds given as its one argument without a request, and never with 0 while it owes a reply.

PDFium (pypdfium2) is Chromium's PDF engine. Its text keeps characters drawn outside the page's box (the
bounds below are wide), drops duplicates drawn on top of each other (fake bold), and reads at most 32,767
characters of one string operand (its parser's limit)."""

import ctypes
import json
import os
import resource
import select
import signal
import sys

MEMORY_BYTES = 4 << 30  # a decompression bomb ends this process with MemoryError, not the machine
FAR = 1e9  # PDF units
METADATA = ("Title", "Author")


def page_text(document, index: int) -> str:
    """The text of page `index` (0-based) of an open pypdfium2 document, wherever on the page it is drawn;
    a character that is not valid UTF-16 becomes U+FFFD, not nothing."""
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded(-FAR, -FAR, FAR, FAR, errors="replace")
        finally:
            textpage.close()
    finally:
        page.close()


def metadata_text(document, key: str) -> str:
    """The metadata value `key` (pypdfium2's own reader decodes strictly: one bad Title would lose the file)."""
    import pypdfium2.raw as pdfium_c

    name = (key + "\x00").encode()
    size = pdfium_c.FPDF_GetMetaText(document, name, None, 0)
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDF_GetMetaText(document, name, buffer, size)
    return buffer.raw[:max(size - 2, 0)].decode("utf-16-le", errors="replace")


def read(data: bytes) -> dict:
    """The reply (see the module doc) for the PDF `data`."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        locked = exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)
        return {"refused": "encrypted" if locked else "unreadable", "detail": str(exc)}
    try:
        return {"pages": [page_text(document, i) for i in range(len(document))],
                "metadata": {key: metadata_text(document, key) for key in METADATA}}
    except Exception as exc:  # PdfiumError, or a surprise in Python: this file's reply, not a dead engine
        return {"refused": "unreadable", "detail": f"{type(exc).__name__}: {exc}"}
    finally:
        document.close()


def read_exact(requests, size: int) -> bytes:
    """`size` bytes from the unbuffered `requests`, or fewer at its end."""
    parts, left = [], size
    while left:
        part = requests.read(min(left, 1 << 20))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def serve(requests, replies, idle_s: float) -> None:
    """Answer requests until the end of `requests` or `idle_s` seconds without one. `requests` is
    unbuffered, so that select() sees every byte not yet read; both are binary files (see the module doc)."""
    while select.select([requests], [], [], idle_s)[0]:
        header = read_exact(requests, 8)
        if len(header) < 8:
            return
        reply = json.dumps(read(read_exact(requests, int.from_bytes(header, "big"))), ensure_ascii=False)
        reply = reply.encode(errors="replace")
        replies.write(len(reply).to_bytes(8, "big") + reply)
        replies.flush()


def main() -> None:
    """Serve on stdin and a private copy of stdout; fd 1 then points at stderr, so that a stray write by
    native code cannot corrupt a reply. Ctrl-C meant for pai-kb is not this process's to act on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer.raw, replies, float(sys.argv[1]))


if __name__ == "__main__":
    main()

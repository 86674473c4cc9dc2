"""PDFs made for tests, and the PDF engine's processes as the kernel sees them (/proc)."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def pdf(content: bytes, pages: int = 1, resources: bytes = b"<< /Font << /F1 3 0 R >> >>") -> bytes:
    """A minimal valid PDF whose every page draws `content` (an uncompressed content stream)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + " ".join(f"{4 + 2 * i} 0 R" for i in range(pages)).encode()
               + b"] /Count " + str(pages).encode() + b" >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i in range(pages):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources " + resources
                       + b" /Contents " + str(5 + 2 * i).encode() + b" 0 R >>")
        objects.append(b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def many_pages(size: int) -> bytes:
    """A PDF of about `size` bytes: one short line of text ("page text here") on each of size // 260 pages."""
    return pdf(b"BT /F1 12 Tf 72 700 Td (page text here) Tj ET", pages=size // 260)


def _children() -> list[str]:
    return [pid for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]


def engine_pids() -> set[int]:
    """This process's live PDF engine processes."""
    found = set()
    for pid in _children():
        try:
            live = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if live and b"pdf_engine.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            pass  # it ended while we looked
    return found


def children_cpu() -> float:
    """CPU seconds of this process's children: those that ended and were waited for, and those running
    (the PDF engine serves file after file)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = sum(cpu_ticks(int(pid)) for pid in _children())
    return usage.ru_utime + usage.ru_stime + running / os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """User and system CPU of process `pid` in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])

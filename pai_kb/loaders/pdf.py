"""PDFs: text per page with pypdf. Each page is a block whose line range is its page number, so
citations read `file.pdf p. 3`. Encrypted and image-only (scanned) PDFs are refused with a reason."""

from __future__ import annotations

import io
import logging
from pathlib import PurePosixPath

from pai_kb.errors import SourceError
from pai_kb.models import Block, Document

__all__ = ["load_pdf"]


def load_pdf(data: bytes, root: str, path: str) -> Document:
    """A PDF as a document with one block per page that has text (lines = page number), title and author
    from its metadata. Raises SourceError when it is encrypted, unreadable, or has no extractable text."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    key = f"{root}/{path}"
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns per object on damaged files
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SourceError(f"{key}: encrypted PDF; not indexed — save an unencrypted copy")
        pages = [(n, page.extract_text() or "") for n, page in enumerate(reader.pages, start=1)]
        info = reader.metadata or {}
    except SourceError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise SourceError(f"{key}: unreadable PDF ({exc}); not indexed") from exc
    except Exception as exc:  # pypdf raises assorted errors on damaged files; one bad PDF must not stop a run
        raise SourceError(f"{key}: unreadable PDF ({type(exc).__name__}); not indexed") from exc
    blocks = [Block("page", " ".join(text.split()) if len(text) < 20 else text.strip(), n, n)
              for n, text in pages if text.strip()]
    if not blocks:
        raise SourceError(f"{key}: no extractable text (a scanned PDF?); not indexed — run OCR on it first")
    title = str(info.get("/Title") or "").strip() or PurePosixPath(path).stem
    author = str(info.get("/Author") or "").strip()
    return Document(root=root, path=path, title=title, source_type="pdf", blocks=tuple(blocks),
                    metadata={"author": author, "pages": len(pages)} if author else {"pages": len(pages)})

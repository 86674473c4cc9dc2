"""HTML web clips: the article, not the page. trafilatura extracts the main text as markdown (so the
markdown loader gives headings and line ranges as for any note) and reads title, author, date and the
canonical URL; the page's keywords become tags. Chosen over readability-lxml by `bench/bench_extract.py` on
the Readability test pages: token F1 0.967 mean / 0.905 worst vs 0.973 / 0.829, in about half the time, and
with metadata."""

from __future__ import annotations

import re
from typing import Any

from pai_kb.errors import SourceError
from pai_kb.loaders.markdown import escape_markdown, load_markdown
from pai_kb.loaders.obsidian import keyword_tags
from pai_kb.loaders.text import looks_binary
from pai_kb.models import Document

__all__ = ["decode_html", "load_html"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)
# trafilatura's time grows faster than element count (extraction and metadata together: 0.6 s for 10,000
# paragraphs, 1.4 s for 20,000, 100 s for 250,000 elements). Real articles (the test pages, 1 MB Wikipedia
# included) stay under 3,000; past this limit a plain text pass is used instead and the metadata is read
# from the page's <head> alone, so one pathological page cannot stall the watcher.
MAX_ELEMENTS = 10_000
# htmldate's extensive search (a date guessed from the page's text when its markup declares none) costs up to
# 1.2 s per MB of HTML; on larger pages only declared dates (meta tags, <time>, JSON-LD, the URL) are read.
MAX_DATE_SEARCH_CHARS = 500_000


def decode_html(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 whatever the page declares (saved pages often keep a stale
    `charset=gb2312` after being re-encoded), else the declared charset, else a detector's guess."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return str(best) if best is not None else data.decode("utf-8", errors="replace")


def _tree(html: str) -> Any:
    import lxml.html
    from lxml.etree import ParserError

    try:
        return lxml.html.fromstring(html)
    except (ParserError, ValueError):
        return None


def _head_html(tree: Any) -> str:
    """The page's <head> alone as a document (where title, author, date and canonical URL are declared),
    for metadata from a page too large to give trafilatura whole."""
    import lxml.html

    head = tree.find("head") if tree is not None else None
    return "<html>" + (lxml.html.tostring(head, encoding="unicode") if head is not None else "") + "</html>"


def _body_text(tree: Any) -> str:
    if tree is None:
        return ""
    for bad in tree.xpath("//script|//style|//nav|//header|//footer|//noscript"):
        bad.drop_tree()
    paragraphs = (" ".join(p.split()) for p in tree.text_content().split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def load_html(data: bytes, root: str, path: str) -> Document:
    """A saved web page as a webclip document: its article text as markdown (a plain text pass for pages
    over the element limit) and title, author, date, URL, site and keyword tags from its metadata. Raises
    SourceError when the bytes look binary or hold no text."""
    import trafilatura

    html = decode_html(data)
    if b"\x00" in data[:8192] or looks_binary(html):
        raise SourceError(f"{root}/{path}: looks binary, not HTML; not indexed — rename it if it is a page")
    tree = _tree(html)
    warnings: tuple[str, ...] = ()
    meta_source = html
    if tree is not None and sum(1 for _ in tree.iter()) > MAX_ELEMENTS:
        text = ""
        meta_source = _head_html(tree)  # before `_body_text`, which drops <script> (JSON-LD metadata)
        warnings = (f"{root}/{path}: over {MAX_ELEMENTS:,} HTML elements; indexed with a plain text pass",)
    else:
        text = trafilatura.extract(html, output_format="markdown", include_tables=True, include_links=False,
                                   favor_recall=True, with_metadata=False) or ""
    if not text.strip():
        text = _body_text(tree)  # a fragment, a page with no article, or a pathological one
    if not text.strip():
        raise SourceError(f"{root}/{path}: no text found in the HTML; not indexed")
    meta = trafilatura.extract_metadata(meta_source, extensive=len(meta_source) <= MAX_DATE_SEARCH_CHARS)
    fields = {k: v for k, v in {
        "title": meta.title if meta else None, "author": meta.author if meta else None,
        "published": meta.date if meta else None, "url": meta.url if meta else None,
        "site": meta.sitename if meta else None}.items() if v}
    # A page is not Obsidian markdown: a `#hashtag` or `[[...]]` in an article is text, not a tag or a link.
    doc = load_markdown(escape_markdown(text), root, path)
    keywords = [tag for item in (meta.tags if meta and meta.tags else ()) for tag in keyword_tags(item)]
    tags = tuple(dict.fromkeys((*doc.tags, *keywords)))
    return Document(root=root, path=path, title=fields.get("title") or doc.title, source_type="webclip",
                    blocks=doc.blocks, tags=tags, links=doc.links, metadata=fields, url=fields.get("url"),
                    warnings=doc.warnings + warnings)

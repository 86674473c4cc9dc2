"""Web clips (HTML and markdown) and PDFs, with literal inputs and generated files."""

import io

import pytest
from fpdf import FPDF

from pai_kb.errors import SourceError
from pai_kb.loaders import load_bytes
from pai_kb.loaders.html import decode_html

ARTICLE = """<html><head><meta charset="gb2312"><title>Ignored | Site</title>
<link rel="canonical" href="https://example.org/a/b"><meta name="author" content="Ada Writer">
<meta property="article:published_time" content="2023-05-06"></head><body>
<nav>Home | About | Contact</nav><article><h1>Bread at home</h1>
<p>Baking bread at home needs flour, water, salt and patience. 面包 is bread in Chinese.</p>
<h2>Proofing</h2><p>Let the dough rise until it has doubled in size, usually four to six hours.</p>
</article><footer>Subscribe now!</footer></body></html>"""


def test_html_clip_article_metadata_and_headings():
    doc = load_bytes(ARTICLE.encode("utf-8"), "inbox", "bread.html")
    assert doc.source_type == "webclip" and doc.url == "https://example.org/a/b"
    assert doc.metadata["author"] == "Ada Writer" and doc.metadata["published"] == "2023-05-06"
    text = "\n".join(b.text for b in doc.blocks)
    assert "doubled in size" in text and "面包" in text and "Subscribe" not in text and "Contact" not in text
    assert [b.text for b in doc.blocks if b.kind == "heading"][-1] == "Proofing"


def test_declared_charset_wrong_but_bytes_utf8():
    assert "面包" in decode_html(ARTICLE.encode("utf-8"))


def test_declared_charset_used_when_not_utf8():
    page = '<html><head><meta charset="gb2312"></head><body><p>面包</p></body></html>'.encode("gb2312")
    assert "面包" in decode_html(page)


def test_html_without_article_keeps_what_text_there_is():
    doc = load_bytes(b"<div><p>Only a small fragment of text.</p></div>", "inbox", "frag.html")
    assert "small fragment" in doc.blocks[0].text


def test_html_with_no_text_is_refused():
    with pytest.raises(SourceError, match="empty.html: no text"):
        load_bytes(b"<html><body><script>var x=1;</script></body></html>", "inbox", "empty.html")


def test_five_megabyte_page():
    filler = "<div class='ad'>" + "<span>buy now</span>" * 250_000 + "</div>"
    page = ARTICLE.replace("<footer>", filler + "<footer>").encode()
    assert len(page) > 5_000_000
    doc = load_bytes(page, "inbox", "big.html")
    assert any("doubled in size" in b.text for b in doc.blocks)


def test_markdown_clip_fields():
    clip = b"""---
title: "A clipped post"
source: "https://blog.example.org/post"
author:
  - "[[Kevin Kelly]]"
published: April 28, 2020
created: 2023-09-12
tags:
  - "clippings"
---
Body of the post.
"""
    doc = load_bytes(clip, "inbox", "clip.md")
    assert doc.source_type == "webclip" and doc.url == "https://blog.example.org/post"
    assert doc.metadata["author"] == ["Kevin Kelly"] and doc.tags == ("clippings",)
    from pai_kb.loaders.frontmatter import document_date
    assert document_date({"published": "April 28, 2020"}) == "2020-04-28"
    assert document_date({"date": "28/04/2020"}) == "2020-04-28"
    assert document_date({"date": "not a date"}) is None


def pdf_bytes(pages: list[str], password: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_title("Generated report")
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    out = io.BytesIO()
    pdf.output(out)
    return out.getvalue()


def test_pdf_pages_are_blocks_with_page_numbers():
    doc = load_bytes(pdf_bytes(["First page about tides.", "", "Third page about moons."]), "inbox", "r.pdf")
    assert doc.source_type == "pdf" and doc.title == "Generated report" and doc.metadata["pages"] == 3
    assert [(b.line_start, b.text) for b in doc.blocks] == [(1, "First page about tides."),
                                                            (3, "Third page about moons.")]


def test_a_word_hyphenated_across_lines_reads_whole_and_text_off_the_page_is_kept():
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 8, "Sourdough needs regular hyph-", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "enation of the starter.")
    pdf.text(700, 100, "drawn past the right edge")  # the page is 210 mm wide
    out = io.BytesIO()
    pdf.output(out)
    (page,) = load_bytes(out.getvalue(), "inbox", "h.pdf").blocks
    assert "regular hyphenation of the starter." in page.text and "drawn past the right edge" in page.text


def test_a_title_that_is_not_valid_utf16_costs_the_title_not_the_pages():
    """A lone surrogate in the metadata once failed the whole file; it becomes U+FFFD."""
    title = b"/Title (Generated report)"
    data = pdf_bytes(["Tides and moons."]).replace(title, b"/Title <FEFF0054D800>".ljust(len(title)))
    doc = load_bytes(data, "inbox", "t.pdf")
    assert doc.title == "T\ufffd" and [b.text for b in doc.blocks] == ["Tides and moons."]


def test_encrypted_pdf_refused():
    with pytest.raises(SourceError, match="secret.pdf: encrypted PDF"):
        load_bytes(pdf_bytes(["hidden"], password="pw"), "inbox", "secret.pdf")


def test_scanned_pdf_without_text_refused():
    with pytest.raises(SourceError, match="no extractable text"):
        load_bytes(pdf_bytes(["", ""]), "inbox", "scan.pdf")


def test_garbage_pdf_refused():
    with pytest.raises(SourceError, match="unreadable PDF"):
        load_bytes(b"%PDF-1.4\n garbage", "inbox", "bad.pdf")

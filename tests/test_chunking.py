from pai_kb.chunking import chunk_document
from pai_kb.loaders.markdown import load_markdown
from pai_kb.models import Block, Document


def words(texts) -> list[int]:
    return [len(t.split()) for t in texts]


def nwords(text: str) -> int:
    return len(text.split())


def doc_of(text: str, path: str = "n.md") -> Document:
    return load_markdown(text, "vault", path)


def test_heading_paths_and_embed_text():
    doc = doc_of("# Note\n\nintro\n\n## A\n\nalpha\n\n### B\n\nbeta\n\n## C\n\ngamma\n", "Note.md")
    chunks = chunk_document(doc, words, 50, 0, 100, merge_below=0)
    assert [c.heading for c in chunks] == ["Note", "Note > A", "Note > A > B", "Note > C"]
    assert chunks[2].embed_text == "Note > A > B\nbeta"
    assert [(c.line_start, c.line_end) for c in chunks] == [(3, 3), (7, 7), (11, 11), (15, 15)]


def test_packs_small_blocks_until_budget():
    doc = doc_of("\n\n".join(f"p{i} " + "w " * 8 for i in range(10)))
    chunks = chunk_document(doc, words, 30, 0, 100)
    assert all(nwords(c.text) <= 30 for c in chunks)
    assert len(chunks) == 4  # 9 words per paragraph, 3 per chunk


def test_overlap_repeats_trailing_small_block():
    doc = doc_of("\n\n".join(["a " * 10, "b " * 10, "d " * 3, "c " * 10]))
    chunks = chunk_document(doc, words, 25, 5, 100)
    assert chunks[0].text.endswith("d d d") and chunks[1].text.startswith("d d d")
    assert all(nwords(c.text) <= 25 for c in chunks)


def test_code_block_kept_whole_when_it_fits():
    code = "```\n" + "\n".join(f"line{i} x" for i in range(10)) + "\n```"
    doc = doc_of("para one two three\n\n" + code + "\n\nafter")
    chunks = chunk_document(doc, words, 22, 0, 100)
    whole = [c for c in chunks if "line0" in c.text]
    assert len(whole) == 1 and "line9" in whole[0].text


def test_oversize_block_split_by_lines_then_sentences_with_line_ranges():
    text = "\n".join(f"Sentence {i} is here. Another one {i} follows." for i in range(1, 21))
    doc = doc_of(text)
    chunks = chunk_document(doc, words, 20, 0, 100)
    assert all(nwords(c.text) <= 20 for c in chunks)
    assert chunks[0].line_start == 1 and chunks[-1].line_end == 20
    for c in chunks:
        # The chunk's first line is on the line its range starts at, and its last on the line it ends at.
        assert c.text.split("\n")[0].strip() in text.split("\n")[c.line_start - 1]
        assert c.text.split("\n")[-1].strip() in text.split("\n")[c.line_end - 1]


def test_giant_word_is_cut():
    doc = doc_of("x" * 5000)
    chunks = chunk_document(doc, lambda ts: [len(t) // 4 + 1 for t in ts], 100, 0, 200)
    assert "".join(c.text.replace("\n", "") for c in chunks) == "x" * 5000
    assert all(len(c.text) // 4 + 1 <= 100 for c in chunks)


def test_header_shrinks_budget_to_model_limit():
    doc = Document("vault", "n.md", "T " * 20, "note", (Block("paragraph", "w " * 100, 1, 1),))
    chunks = chunk_document(doc, words, 200, 0, 60)
    assert all(nwords(c.embed_text) <= 60 for c in chunks)


def test_ids_stable_and_local_to_edit():
    base = "# N\n\n## A\n\nalpha text\n\n## B\n\nbeta text\n"
    first = chunk_document(doc_of(base), words, 50, 0, 100, merge_below=0)
    again = chunk_document(doc_of(base), words, 50, 0, 100, merge_below=0)
    edited = chunk_document(doc_of(base.replace("beta text", "beta changed")), words, 50, 0, 100, merge_below=0)
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id == edited[0].id and first[1].id != edited[1].id


def test_duplicate_passages_get_distinct_ids():
    chunks = chunk_document(doc_of("## A\n\nsame\n\n## A\n\nsame\n"), words, 50, 0, 100, merge_below=0)
    assert len({c.id for c in chunks}) == 2


def test_h1_repeating_title_not_doubled():
    chunks = chunk_document(doc_of("# Dog\n\ntext", "Dog.md"), words, 50, 0, 100)
    assert chunks[0].heading == "Dog"


def test_real_tokenizer_budget(embedder):
    text = "\n\n".join("Obsidian stores notes as plain Markdown files in a local folder. " * 6 for _ in range(12))
    doc = doc_of(text)
    chunks = chunk_document(doc, embedder.count_tokens, 200, 32, embedder.max_tokens)
    assert len(chunks) > 3
    assert max(embedder.count_tokens([c.embed_text for c in chunks])) <= embedder.max_tokens


def test_tiny_intro_joins_the_section_it_introduces():
    text = "# Note\n\nOne line intro.\n\n## Recipe\n\n" + "grams of coffee " * 20 + "\n\n## Method\n\n" + "pour slowly " * 20
    chunks = chunk_document(doc_of(text, "Note.md"), words, 100, 0, 200, merge_below=10)
    assert [c.heading for c in chunks] == ["Note > Recipe", "Note > Method"]
    assert chunks[0].text.startswith("One line intro.") and (chunks[0].line_start, chunks[0].line_end) == (3, 7)


def test_tiny_trailing_section_joins_the_one_before():
    text = "## Body\n\n" + "long text here " * 20 + "\n\n## See also\n\n- Other note\n"
    chunks = chunk_document(doc_of(text, "n.md"), words, 100, 0, 200, merge_below=10)
    assert [c.heading for c in chunks] == ["n > Body"] and chunks[0].text.endswith("- Other note")


def test_sections_at_or_over_the_threshold_stay_apart():
    text = "## A\n\n" + "a " * 10 + "\n\n## B\n\n" + "b " * 10
    assert len(chunk_document(doc_of(text), words, 100, 0, 200, merge_below=10)) == 2
    assert len(chunk_document(doc_of(text), words, 100, 0, 200, merge_below=11)) == 1


def test_a_note_of_only_tiny_sections_is_one_chunk():
    chunks = chunk_document(doc_of("## A\n\nx\n\n## B\n\ny\n\n## C\n\nz\n"), words, 100, 0, 200, merge_below=10)
    assert len(chunks) == 1 and chunks[0].text == "x\n\ny\n\nz"

"""Test helpers shared by several test modules."""

from __future__ import annotations

from pai_kb.kb import KnowledgeBase


def snapshot(kb: KnowledgeBase) -> set[tuple[str, str, str]]:
    """(doc key, chunk id, text) of everything the manifest holds; asserts the vector store and the
    keyword index hold exactly the same ids, so one comparison checks all three."""
    rows = [(c.doc_key, c.id, c.text) for c in kb.manifest.all_chunks()]
    assert kb.manifest.keyword_rows() == len(rows), "keyword index out of step with chunks"
    assert kb.store.ids() == {r[1] for r in rows}, "vector store out of step with manifest"
    return set(rows)

"""The manifest: one SQLite database per generation that is the index's source of truth.

It maps every file to its stat and content hash and its chunk ids, holds chunk text, citation fields and
vectors (float32), the keyword (FTS5) index, the index fingerprint, and a journal of vector ids that may
exist in Chroma without being committed here (`orphans`). Because chunks, their vectors and the keyword
index change in the same SQLite transaction, they can never disagree; Chroma is repaired from the
journal. Every write of chunks moves `version`, so readers in other processes know to reload.

The package is split by concern: `database` (connections, schema, transactions, meta, batching),
`documents` (files and chunks), `vectors`, `journal` (Chroma's crash journal) and `ranking` (BM25 and
filters). Only this package runs SQL.
"""

from __future__ import annotations

from pai_kb.manifest.database import SCHEMA_VERSION
from pai_kb.manifest.documents import DocInfo, Documents, FileState
from pai_kb.manifest.journal import Journal
from pai_kb.manifest.ranking import Ranking, filter_sql
from pai_kb.manifest.vectors import Moments, Vectors

__all__ = ["SCHEMA_VERSION", "DocInfo", "FileState", "Manifest", "Moments", "filter_sql"]


class Manifest(Documents, Vectors, Journal, Ranking):
    """The whole manifest of one generation: `Manifest(path)` opens (and, for a writer, creates) it."""

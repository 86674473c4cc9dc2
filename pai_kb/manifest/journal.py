"""The orphan journal: vector ids that may sit in a Chroma server without being committed here, written
before they reach it and cleared once repaired (see `sync`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from pai_kb.manifest.database import Database

__all__ = ["Journal"]


class Journal(Database):
    """The crash journal of a Chroma server's vectors."""

    # -- orphan journal -------------------------------------------------------------------------
    def add_orphans(self, db: sqlite3.Connection, ids: Iterable[str]) -> None:
        """Journal `ids` as vectors that may reach the store uncommitted; call inside `transaction()`."""
        db.executemany("INSERT OR IGNORE INTO orphans(id) VALUES (?)", ((i,) for i in ids))

    def orphans(self) -> list[str]:
        """Journal ids the manifest does not hold: vectors that must be deleted from the store."""
        rows = self._db.execute("SELECT o.id FROM orphans o LEFT JOIN chunks c ON c.id = o.id WHERE c.id IS NULL")
        return [r[0] for r in rows]

    def journal_size(self) -> int:
        """How many ids the journal holds (committed or not)."""
        return self._db.execute("SELECT count(*) FROM orphans").fetchone()[0]

    def clear_orphans(self, db: sqlite3.Connection, ids: Iterable[str] | None = None) -> None:
        """Drop `ids` from the journal, or all of it when None; call inside `transaction()`."""
        if ids is None:
            db.execute("DELETE FROM orphans")
        else:
            db.executemany("DELETE FROM orphans WHERE id = ?", ((i,) for i in ids))

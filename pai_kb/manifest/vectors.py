"""Vectors: every chunk's float32 vector lives in its row, written in the chunk's own transaction."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from pai_kb.manifest.database import Database, batched

__all__ = ["Vectors"]


class Vectors(Database):
    """Reading the chunks' vectors (dense search's matrix, reuse by embed hash)."""

    def all_vectors(self) -> tuple[list[str], list[bytes]]:
        """(chunk ids, their float32 vectors as bytes), in one consistent read."""
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY rowid").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """chunk id -> its vector (float32 read as floats), for those of `ids` the manifest holds."""
        found: dict[str, list[float]] = {}
        for part, marks in batched(list(ids)):
            for cid, blob in self._db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
                found[cid] = array("f", blob).tolist()
        return found

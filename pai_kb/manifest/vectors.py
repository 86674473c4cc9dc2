"""Vectors: every chunk's float32 vector lives in its row, written in the chunk's own transaction."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from pai_kb.manifest.database import Database, batched

__all__ = ["Moments", "Vectors", "pack_moments"]

# A transcript chunk's cues: (start in seconds, the cue's vector), in reading order.
Moments = list[tuple[float, list[float]]]


def pack_moments(moments: Moments | None) -> bytes | None:
    """The `moments` column: float32 [count, then per cue its start and vector]; None for no cues."""
    if not moments:
        return None
    flat = array("f", [float(len(moments))])
    for start, vector in moments:
        flat.append(start)
        flat.extend(vector)
    return flat.tobytes()


def unpack_moments(blob: bytes) -> Moments:
    """What `pack_moments` wrote."""
    flat = array("f", blob)
    count = int(flat[0])
    width = (len(flat) - 1) // count
    rows = (flat[1 + n * width:1 + (n + 1) * width] for n in range(count))
    return [(float(row[0]), row[1:].tolist()) for row in rows]


class Vectors(Database):
    """Reading the chunks' vectors (dense search's matrix, reuse by embed hash)."""

    def all_vectors(self) -> tuple[list[str], list[bytes]]:
        """(chunk ids, their float32 vectors as bytes), in one consistent read."""
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY rowid").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def moments(self, ids: Sequence[str]) -> dict[str, Moments]:
        """chunk id -> its cues' starts and vectors, for those of `ids` that are transcript chunks."""
        found: dict[str, Moments] = {}
        for part, marks in batched(list(ids)):
            rows = self._db.execute(f"SELECT id, moments FROM chunks WHERE moments IS NOT NULL AND id IN ({marks})", part)
            found.update((cid, unpack_moments(blob)) for cid, blob in rows)
        return found

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """chunk id -> its vector (float32 read as floats), for those of `ids` the manifest holds."""
        found: dict[str, list[float]] = {}
        for part, marks in batched(list(ids)):
            for cid, blob in self._db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
                found[cid] = array("f", blob).tolist()
        return found

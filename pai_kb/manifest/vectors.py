"""Vectors: every chunk's float32 vector, in the `vectors` table under the chunk's rowid, written and deleted
in the chunk's own transaction."""

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

    def all_vectors(self) -> tuple[list[str], bytearray]:
        """(chunk ids, their float32 vectors end to end: row n of the matrix is ids[n]'s), in one
        consistent read. The buffer is allocated once and filled in place, so reading a million
        vectors holds them once, not twice; ids come from the chunk ids' own index, not the chunk rows."""
        with self.snapshot() as db:
            names = dict(db.execute("SELECT rowid, id FROM chunks"))
            first = db.execute(f"SELECT length(vector) FROM {self.vector_table} LIMIT 1").fetchone()
            width = first[0] if first else 0
            matrix, ids = bytearray(width * len(names)), []
            rows = db.execute(f"SELECT rowid, vector FROM {self.vector_table} ORDER BY rowid")
            while batch := rows.fetchmany(4096):
                part = [row for row in batch if row[0] in names]  # a vector without its chunk is never shown
                at = len(ids) * width
                matrix[at:at + width * len(part)] = b"".join(blob for _, blob in part)
                ids += [names[rowid] for rowid, _ in part]
        del matrix[len(ids) * width:]  # the same length unless a chunk had no vector
        return ids, matrix

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
            rows = self._db.execute(f"SELECT c.id, v.vector FROM chunks c JOIN {self.vector_table} v "
                                    f"ON v.rowid = c.rowid WHERE c.id IN ({marks})", part)
            for cid, blob in rows:
                found[cid] = array("f", blob).tolist()
        return found

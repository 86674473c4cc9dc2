"""Keyword ranking: BM25 over the two FTS5 tables, the query plan's tiers, document frequencies, and
filters as SQL (no character of user input is a wildcard)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pai_kb.keyword import Tier, fts_term, parse, tiers
from pai_kb.manifest.database import _KEYWORD_TABLES, Database, batched
from pai_kb.models import Filters

__all__ = ["Ranking", "filter_sql"]

# Title and aliases are what a note says it is about: a match there outweighs one in the body.
# `chunks_seg` holds, column for column, the identifiers and CJK bigrams of the same chunk
# (`keyword.segmented`): a table of its own, because FTS5's BM25 normalises by the length of the whole
# row, and these tokens in `chunks_fts` would move every English score. A row's score is the sum of both.
_WEIGHTS = "4.0, 4.0, 2.0, 1.0"
# The rows either keyword table matches for an FTS5 expression (given twice).
_MATCHING = " UNION ".join(f"SELECT rowid FROM {t} WHERE {t} MATCH ?" for t in _KEYWORD_TABLES)


def filter_sql(filters: Filters) -> tuple[str, list[str]]:
    """A WHERE fragment over `chunks c` joined with `files f`, and its parameters. No character of a
    filter is a wildcard except a path glob's own `*`, `?` and `[...]` (GLOB has no `%` or `_`)."""
    clauses: list[str] = []
    params: list[str] = []
    if filters.types:
        clauses.append(f"c.source_type IN ({','.join('?' * len(filters.types))})")
        params.extend(filters.types)
    for tag in filters.tags:
        # Obsidian tags are case-insensitive (here: ASCII letters, SQLite's lower()) and nested: #coffee
        # matches #coffee/espresso. A prefix compared with substr, not LIKE, whose `_` and `%` are wildcards.
        clauses.append("EXISTS (SELECT 1 FROM json_each(c.tags) t, (SELECT lower(?) AS want) w "
                       "WHERE lower(t.value) = w.want OR substr(lower(t.value), 1, length(w.want) + 1) = w.want || '/')")
        params.append(tag)
    if filters.path:
        clauses.append("f.path GLOB ?")
        params.append(filters.path)
    if filters.since:
        clauses.append("f.doc_date >= ?")
        params.append(filters.since)
    return (" AND ".join(clauses) or "1"), params


class Ranking(Database):
    """BM25 keyword search and filtered ids."""

    def keyword_search(self, query: str, k: int, filters: Filters = Filters(), complete: bool = False,
                       without: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the best `k` rows for `query`, best first: BM25 over the planned query
        (`keyword.plan`) in both keyword tables, summed; in a lookup, rows holding an identifier of the
        query first (`keyword.tiers`). With `complete` (a keyword-only search, where these are the only
        results), a plan that found fewer than `k` rows falls back to the plain OR. Columns in `without`
        are not searched."""
        parsed = parse(query)
        if not parsed.words:
            return []
        df, rows, segmented_df = self._frequencies(parsed.words)
        # Most English queries match nothing in chunks_seg: then it is left out, and the search costs what
        # it did before that table existed.
        reads_seg = parsed.identifiers or parsed.phrases or any(segmented_df.values())
        tables = _KEYWORD_TABLES if reads_seg else _KEYWORD_TABLES[:1]
        planned, full = tiers(parsed, df, rows), tiers(parsed, df, rows, budget=sys.maxsize)
        found = self._tiered(planned, k, filters, without, tables)
        if complete and len(found) < k and planned != full:
            found = self._tiered(full, k, filters, without, tables)
        return found

    def _tiered(self, searches: list[Tier], k: int, filters: Filters, without: tuple[str, ...],
                tables: tuple[str, ...]) -> list[tuple[str, float]]:
        """The results of each search in turn, up to `k` in all. An earlier tier's scores are raised by
        the best score of the later ones, so that scores fall in the order the results come."""
        groups: list[list[tuple[str, float]]] = []
        for tier in searches:
            wanted = k - sum(map(len, groups))
            if wanted <= 0:
                break
            groups.append(self._bm25(tier, wanted, filters, without, tables))
        stacked: list[tuple[str, float]] = []
        for group in reversed(groups):
            lift = stacked[0][1] if stacked else 0.0
            stacked[:0] = [(i, s + lift) for i, s in group]
        return stacked

    def _frequencies(self, words: list[str]) -> tuple[dict[str, int], int, dict[str, int]]:
        """How many rows hold each word, how many rows there are, and how many rows hold each word in
        `chunks_seg`; kept until the index changes."""
        version = self.version()
        cache = getattr(self._local, "df", None)
        if cache is None or cache[0] != version:
            cache = (version, {"": (self._db.execute("SELECT count(*) FROM chunks").fetchone()[0], 0)})
            self._local.df = cache
        counts = cache[1]
        for word in words:
            if word not in counts:
                term = fts_term(word)
                counts[word] = (
                    self._db.execute(f"SELECT count(*) FROM ({_MATCHING})", (term, term)).fetchone()[0],
                    self._db.execute("SELECT count(*) FROM chunks_seg WHERE chunks_seg MATCH ?", (term,)).fetchone()[0])
        return {w: counts[w][0] for w in words}, counts[""][0], {w: counts[w][1] for w in words}

    def _bm25(self, tier: Tier, k: int, filters: Filters, without: tuple[str, ...],
              tables: tuple[str, ...]) -> list[tuple[str, float]]:
        """The best `k` rows of one search: each row's BM25 in `tables` (keyword tables), summed."""
        scored = _within(tier.scored, without)
        params: list[str] = [scored] * len(tables)
        kept = []
        conditions = [(r, "IN") for r in tier.required] + ([(tier.excluded, "NOT IN")] if tier.excluded else [])
        for expression, condition in conditions:
            kept.append(f"rowid {condition} ({_MATCHING})")
            params.extend([_within(expression, without)] * 2)
        each = [f"SELECT rowid, bm25({t}, {_WEIGHTS}) AS score FROM {t} WHERE {t} MATCH ?" for t in tables]
        ranked = (f"SELECT rowid, sum(score) AS score FROM ({' UNION ALL '.join(each)}) GROUP BY rowid"
                  if len(each) > 1 else each[0])
        if kept:
            ranked = f"SELECT * FROM ({ranked}) WHERE {' AND '.join(kept)}"
        if not filters.active:
            # Ranking before the join, which then fetches only the top k, is about twice as fast.
            rows = self._db.execute(f"SELECT c.id, -s.score FROM ({ranked} ORDER BY score LIMIT ?) s "
                                    "JOIN chunks c ON c.rowid = s.rowid ORDER BY s.score", (*params, k))
            return [(i, float(s)) for i, s in rows]
        where, filter_params = filter_sql(filters)
        rows = self._db.execute(
            f"SELECT c.id, -s.score FROM ({ranked}) s JOIN chunks c ON c.rowid = s.rowid "
            f"JOIN files f ON f.doc_key = c.doc_key WHERE {where} ORDER BY s.score LIMIT ?",
            (*params, *filter_params, k))
        return [(i, float(s)) for i, s in rows]

    def filtered_ids(self, filters: Filters, among: Sequence[str] | None = None) -> list[str]:
        """The ids of every chunk whose file passes `filters` (only those in `among`, when given, in no
        particular order), read from indexes, never from the chunk rows."""
        where, params = filter_sql(filters)
        if among is None:
            # Files first (CROSS JOIN keeps SQLite to that order): a path or date filter leaves few, and
            # each one's chunks are found in the (doc_key, source_type, id) index. At 100,000 chunks a
            # path filter took 7 ms this way, 48-59 ms scanning the chunks.
            rows = self._db.execute(f"SELECT c.id FROM files f CROSS JOIN chunks c ON c.doc_key = f.doc_key "
                                    f"WHERE {where}", params)
            return [r[0] for r in rows]
        found: list[str] = []
        for part, marks in batched(list(among)):  # each id looked up by the chunk id index
            found += [r[0] for r in self._db.execute(f"SELECT c.id FROM chunks c JOIN files f ON f.doc_key = c.doc_key "
                                                     f"WHERE c.id IN ({marks}) AND {where}", (*part, *params))]
        return found

    def keyword_rows(self) -> int:
        """Rows in the keyword index; equal to the number of chunks unless something is broken (-1 when
        its two tables, which hold a row for every chunk each, disagree)."""
        counts = {self._db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _KEYWORD_TABLES}
        return counts.pop() if len(counts) == 1 else -1


def _within(match: str, without: tuple[str, ...]) -> str:
    """`match` over every column but those in `without` (in both keyword tables, which share names)."""
    return f"- {{{' '.join(without)}}} : ({match})" if without else match

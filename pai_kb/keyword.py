"""Turning what a person types into an FTS5 query, and text into the tokens FTS5 cannot make itself.

Every word becomes a quoted term (so `--sliding-window`, `C++` or `AND` can never be read as query
syntax) and the terms are OR-ed, leaving BM25 to rank. Common English function words are dropped:
natural-language questions otherwise match every chunk on "how do I", and on the project's own
Obsidian Help questions that lifted hybrid recall@5 from 0.85 to 0.95 while SciFact nDCG@10 moved by
less than 0.001. A query made only of such words keeps them.

FTS5's `unicode61` tokenizer cuts at every punctuation mark and never inside a run of letters, which is
wrong twice for what people type:
- an **identifier** (`DEC-0054`, `v2.3.1`, `snake_case`, `pai_kb/keyword.py`, `C#`) falls apart into
  words that match anywhere (`dec`, `0054`). `segmented` keeps each one whole as a single token (its
  separators mapped to private-use characters, which `unicode61` counts as letters, and a private-use
  end mark so the Porter stemmer never trims it), and a query naming one ranks the rows holding it first;
- Chinese and Japanese have no spaces and Korean attaches particles, so a whole **CJK** sentence is one
  token and a word inside it matches nothing. `segmented` writes each CJK run as overlapping bigrams,
  the standard CJK indexing unit (Lucene's CJKBigramFilter): most Chinese words are two characters,
  which trigrams cannot match at all. A CJK word in a query becomes its bigrams, OR-ed like words.
These tokens live in companion columns (`text_seg` beside `text`, ...), so English rows and their BM25
figures are exactly what they were, and a column held out of a search takes its companion with it.

A quoted part of a query (`"pour over"`, `"DEC-0054"`) is a phrase every result must hold.

On a large index, words common in *this* corpus cost the same: FTS5 scores every row holding any query
word, so five words each in a fifth of 100,000 chunks mean BM25 on 60,000 rows (~120 ms). `plan` bounds
that work the way Lucene's CommonTermsQuery does, using each word's document frequency:
- a word in half the rows or more is dropped: FTS5's BM25 gives it an IDF of 1e-6, so it could not
  change the order anyway;
- while the words' rows together stay under `budget`, the plain OR query runs, exactly as before (a
  personal vault rarely gets past this line);
- beyond it, the rarest words (up to `budget` rows together) are still OR-ed, and the remaining common
  words must all appear together to match, so a row holding only one common word is no longer scored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["STOPWORDS", "Tier", "fts_term", "parse", "plan", "segmented", "terms", "tiers"]

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be but by can could do does did for from had has have how i if in into is it its "
    "me my of on or our should so than that the their them then there these they this those to was we "
    "were what when where which who whom why will with would you your".split())
BUDGET_ROWS = 10_000  # ~15 ms of BM25 on 2 cores

# Han (with extensions and compatibility ideographs), kana (half-width too), Hangul syllables and jamo.
_CJK_CHARS = ("\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
              "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_CJK_PIECE = re.compile(f"[{_CJK_CHARS}]+|[^{_CJK_CHARS}]+")
_CJK_CHAR = re.compile(f"[{_CJK_CHARS}]")
# Letters or digits joined by -._/# (`DEC-0054`, `v2.3.1`, `snake_case`), or ending in + or # (`C++`, `C#`).
# Joined only by `-` and without a digit it is an English compound (`long-term`, `state-of-the-art`), no
# identifier: ranking rows that hold one first cost SciFact's keyword nDCG@10 0.025 (0.676 -> 0.651).
_JOINED = re.compile(r"[^\W_]+(?:[-._/#]+[^\W_]+)+[+#]*(?![^\W_])|[^\W_]+[+#]+(?![^\W_])")
_NOT_COMPOUND = re.compile(r"[\d._/#+]")
_SEPARATORS = "-._/#+"
_PRIVATE = str.maketrans({c: chr(0xE000 + ord(c)) for c in _SEPARATORS})
_END = "\ue000"
_QUOTED = re.compile(r'"([^"]*)"')
# A query of an identifier and at most this many other words is a lookup (`DEC-0054`, `v2.3.1 changelog`):
# rows holding the identifier come first. In a longer question an identifier counts as its words, as
# before: on SciFact's claims ("... MEK 1/2 inhibitors ...") ranking its rows first cost keyword nDCG@10
# 0.002, and adding its exact match as a term lost a relevant abstract from one claim's top 100.
LOOKUP_WORDS = 3


@dataclass(frozen=True)
class Query:
    """A query taken apart: `words` are OR-ed and ranked by BM25; a row holding one of `identifiers`
    (FTS5 phrases of `identifier_token`s, found only in a lookup) ranks above every row holding none;
    every one of `phrases` must be held."""
    words: list[str]
    identifiers: list[str]
    phrases: list[str]


@dataclass(frozen=True)
class Tier:
    """One FTS5 search of a query: the rows matching `scored`, ranked by it, that also match each of
    `required` and not `excluded`."""
    scored: str
    required: tuple[str, ...] = ()
    excluded: str | None = None


def parse(text: str) -> Query:
    """The words, identifiers and quoted phrases of what a person typed; an unpaired `"` is ignored."""
    quoted = _QUOTED.findall(text)
    loose = _QUOTED.sub(" ", text)
    found = list(dict.fromkeys(identifiers_in(loose)))
    rest = [w for w in _WORD.findall(_JOINED.sub(" ", loose)) if w.lower() not in STOPWORDS]
    phrases = [p for p in dict.fromkeys(map(_phrase, quoted)) if p]
    named = [_quoted(identifier_token(i)) for i in found] if len(rest) <= LOOKUP_WORDS else []
    return Query(terms(text), named, phrases)


def terms(text: str) -> list[str]:
    """The query's words, function words dropped (unless nothing else is left); a CJK run becomes its
    bigrams, a single CJK character stays one."""
    words = list(dict.fromkeys(t for w in _WORD.findall(text) for t in _pieces(w)))
    return [w for w in words if w.lower() not in STOPWORDS] or words


def fts_term(word: str) -> str:
    """The FTS5 expression for one word of `terms`: quoted, so it is never query syntax. A single CJK
    character is a prefix: it matches the bigrams it starts and the run-final characters `segmented`
    adds."""
    return f"{_quoted(word)} *" if len(word) == 1 and _CJK_CHAR.match(word) else _quoted(word)


def identifier_token(identifier: str) -> str:
    """`identifier` as the single token `segmented` stores for it."""
    return identifier.translate(_PRIVATE) + _END


def segmented(text: str) -> str:
    """What the companion column of `text` holds: every CJK-bearing word cut into bigrams (its other
    letters kept as words), in order, so a quoted CJK phrase matches adjacent bigrams; then each CJK run's
    last character, so a one-character query finds it; then each identifier as one token, and each
    `/`-separated part of one that is an identifier itself (`keyword.py` in `pai_kb/keyword.py`)."""
    sequence: list[str] = []
    finals: list[str] = []
    for word in _WORD.findall(text):
        if _CJK_CHAR.search(word):
            sequence.extend(_pieces(word))
            finals.extend(run[-1] for run in _CJK_PIECE.findall(word) if len(run) > 1 and _CJK_CHAR.match(run))
    identifiers: list[str] = []
    for found in identifiers_in(text):
        identifiers.append(found)
        if "/" in found:
            identifiers.extend(part for part in found.split("/") if _is_identifier(part))
    return " ".join([*sequence, *finals, *map(identifier_token, identifiers)])


def identifiers_in(text: str) -> list[str]:
    """The identifiers in `text`, in order (see `_JOINED`)."""
    return [found for found in _JOINED.findall(text) if _NOT_COMPOUND.search(found)]


def _is_identifier(text: str) -> bool:
    return _JOINED.fullmatch(text) is not None and _NOT_COMPOUND.search(text) is not None


def _pieces(word: str) -> list[str]:
    """A word as query and index see it: unchanged without CJK; else each CJK run as its bigrams (a
    lone character as itself) and each stretch of other letters as a word."""
    if not _CJK_CHAR.search(word):
        return [word]
    pieces: list[str] = []
    for run in _CJK_PIECE.findall(word):
        if not _CJK_CHAR.match(run):
            pieces.extend(p for p in run.split("_") if p)
        elif len(run) == 1:
            pieces.append(run)
        else:
            pieces.extend(run[i:i + 2] for i in range(len(run) - 1))
    return pieces


def _phrase(quoted: str) -> str:
    """A quoted part of the query as an FTS5 phrase: an identifier as its token, else its words (CJK
    as bigrams) in order; empty when it holds no word."""
    text = quoted.strip()
    if _is_identifier(text):
        return _quoted(identifier_token(text))
    words = [p for w in _WORD.findall(text) for p in _pieces(w)]
    if len(words) == 1:
        return fts_term(words[0])
    return _quoted(" ".join(words)) if words else ""


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _any_of(words: list[str]) -> str:
    return " OR ".join(map(fts_term, words))


def plan(words: list[str], df: Mapping[str, int], rows: int, budget: int = BUDGET_ROWS) -> str:
    """The FTS5 expression for `words` given how many of the index's `rows` hold each (see above)."""
    informative = [w for w in words if df[w] * 2 < rows] or words
    if sum(df[w] for w in informative) <= budget or len(informative) == 1:
        return _any_of(informative)
    rare: list[str] = []
    for word in sorted(informative, key=lambda w: df[w]):
        if sum(df[w] for w in rare) + df[word] > budget:
            break
        rare.append(word)
    common = [w for w in informative if w not in rare]
    parts = [fts_term(w) for w in rare]
    if len(common) > 1 or not rare:
        parts.append("(" + " AND ".join(map(fts_term, common)) + ")")
    return " OR ".join(parts)


def tiers(query: Query, df: Mapping[str, int], rows: int, budget: int = BUDGET_ROWS) -> list[Tier]:
    """The searches whose results are concatenated, in order: without identifiers, the planned words;
    with them, first the rows holding one (ranked by the words and the identifiers together), then the
    rest. Each requires the quoted phrases."""
    words = plan(query.words, df, rows, budget)
    if not query.identifiers:
        return [Tier(words, tuple(query.phrases))]
    named = " OR ".join(query.identifiers)
    return [Tier(f"{words} OR {named}", (named, *query.phrases)), Tier(words, tuple(query.phrases), named)]

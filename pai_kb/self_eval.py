"""How well search works on the person's own vault, measured with questions the vault itself labels.

A demanding user asks "how good is this on *my* notes?", and whether the abstention threshold tuned on
the Obsidian Help vault suits them. Three kinds of labelled question come from the vault, each with the
label's own text held out of what is searched, where it would give the answer away (`HoldOut`):

- alias: a note's alias (frontmatter `aliases`) should find that note. The `aliases` column of the
  keyword index is not searched; aliases are never embedded, so the dense arm is unchanged.
- link: the display text of `[[Target|display text]]` should find Target. The linking note, which
  holds those very words, is left out of the results.
- heading: a section heading should find its note. The `heading` column is not searched, and the
  chunks under that heading are scored by vectors of their text embedded without it.

Labels that merely repeat the note's title or file name are skipped (they test nothing), as are labels
made only of function words. Off-topic probes (general-knowledge questions a personal vault has no
reason to hold) give the other side of the abstention threshold: the best dense similarity of each
vault question and each probe, and the threshold that best separates them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pai_kb.embeddings import Encoder
from pai_kb.keyword import STOPWORDS
from pai_kb.loaders.obsidian import parse_links
from pai_kb.manifest import Manifest
from pai_kb.models import Chunk, HoldOut, Hit

__all__ = ["SelfEvalReport", "alias_questions", "best_threshold", "evaluate", "heading_questions", "hit_and_rank",
           "informative", "link_questions", "without_heading"]

KINDS = ("alias", "link", "heading")
PROBES = (
    "What is the melting point of tungsten?", "Who won the 1966 FIFA World Cup final?",
    "How many moons does Neptune have?", "What is the capital city of Burkina Faso?",
    "When was the Treaty of Westphalia signed?", "How tall is the Burj Khalifa?",
    "What is the atomic number of molybdenum?", "Who painted the Arnolfini Portrait?",
    "What is the airspeed of an unladen swallow?", "How long is the Danube river?",
    "Which enzyme unwinds DNA during replication?", "What year did the Byzantine Empire fall?",
    "How do I change the oil in a 2004 Honda Civic?", "What is the offside rule in ice hockey?",
    "Who composed the opera Rusalka?", "What is the population of Reykjavik?",
    "How do you say thank you in Tagalog?", "What causes the aurora borealis?",
    "What is the boiling point of liquid nitrogen?", "Who was the first emperor of the Ming dynasty?",
)
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_SearchFn = Callable[[str, str, HoldOut], list[Hit]]


@dataclass(frozen=True)
class Question:
    """A question derived from the vault (`kind`: alias, link or heading) whose answer is note `doc_key`, and
    what the search must do without so the question cannot find itself."""
    kind: str
    text: str
    doc_key: str
    hold_out: HoldOut = field(default_factory=HoldOut)


@dataclass(frozen=True)
class Figure:
    """hit@5 and MRR@10 (fractions 0-1) of one mode over one group of `questions` questions."""
    mode: str
    group: str  # "all", a question kind, or "type:" + the answer's source type
    questions: int
    hit5: float
    mrr10: float


@dataclass(frozen=True)
class SelfEvalReport:
    """The self-evaluation: questions asked by kind, figures per mode and group, the number of off-topic
    probes, the suggested and the configured abstention thresholds (cosine) with the shares (0-1) of vault
    questions answered and probes abstained on at each, and the seconds taken."""
    questions: dict[str, int]
    figures: list[Figure]
    probes: int
    threshold: float  # the similarity that best separates vault questions from probes
    answered_at_threshold: float
    abstained_at_threshold: float
    current: float  # the configured answer.min_similarity
    answered_at_current: float
    abstained_at_current: float
    seconds: float


def informative(label: str, names: Sequence[str]) -> bool:
    """A label worth asking: some content word, and not just the note's own title or file name."""
    words = [w for w in _WORD.findall(label.lower()) if w not in STOPWORDS]
    return bool(words) and label.strip().lower() not in {n.strip().lower() for n in names}


def alias_questions(chunks: Sequence[Chunk]) -> list[Question]:
    """One question per informative frontmatter alias (the alias column held out), duplicates dropped."""
    return _unique([Question("alias", alias, c.doc_key, HoldOut(columns=("aliases",)))
                    for c in chunks for alias in c.aliases if informative(alias, (c.title, _stem(c.doc_key)))])


def link_questions(notes: Mapping[str, str], names: Mapping[str, str]) -> list[Question]:
    """`notes`: doc key -> raw markdown; `names`: lower-cased title or file name -> doc key."""
    found = []
    for source, text in notes.items():
        for link in parse_links(text):
            target = names.get(PurePosixPath(link.target).name.lower().removesuffix(".md"))
            if link.embed or not link.alias or target is None or target == source:
                continue
            if informative(link.alias, (link.target, PurePosixPath(link.target).name)):
                found.append(Question("link", link.alias, target, HoldOut(docs=frozenset({source}))))
    return _unique(found)


def heading_questions(chunks: Sequence[Chunk]) -> list[Question]:
    """Headings that name one section in the whole vault (a heading like "Notes" labels nothing)."""
    sections: dict[str, set[tuple[str, str]]] = {}
    for c in chunks:
        parts = c.heading.split(" > ")
        if len(parts) > 1 and informative(parts[-1], (c.title, _stem(c.doc_key))):
            sections.setdefault(parts[-1].lower(), set()).add((c.doc_key, c.heading))
    unique = {label: next(iter(places)) for label, places in sections.items() if len(places) == 1}
    return [Question("heading", heading.split(" > ")[-1], key, HoldOut(columns=("heading",)))
            for key, heading in unique.values()]


def without_heading(question: Question, chunks: Sequence[Chunk], embed: Callable[[list[str]], list[list[float]]]
                    ) -> Question:
    """The question with its section's chunks re-embedded without the heading (see the module doc)."""
    under = [c for c in chunks if c.doc_key == question.doc_key and question.text in c.heading.split(" > ")]
    texts = [" > ".join(p for p in c.heading.split(" > ") if p != question.text) + "\n" + c.text for c in under]
    vectors = dict(zip((c.id for c in under), embed(texts)))
    return Question(question.kind, question.text, question.doc_key,
                    HoldOut(columns=question.hold_out.columns, vectors=vectors))


def _stem(doc_key: str) -> str:
    return PurePosixPath(doc_key).stem


def _unique(questions: list[Question]) -> list[Question]:
    seen: dict[str, Question] = {}
    for q in questions:
        seen.setdefault(q.text.lower(), q)
    return list(seen.values())


def sample(questions: list[Question], limit: int, seed: int = 0) -> list[Question]:
    """At most `limit` of `questions`, chosen by a shuffle seeded with `seed` (the same every run)."""
    ordered = sorted(questions, key=lambda q: (q.text, q.doc_key))
    random.Random(seed).shuffle(ordered)
    return ordered[:limit]


def hit_and_rank(hits: Sequence[Hit], doc_key: str) -> tuple[bool, float]:
    """(answer in the top 5 notes, reciprocal rank within the top 10)."""
    keys = list(dict.fromkeys(h.chunk.doc_key for h in hits))[:10]
    rank = keys.index(doc_key) + 1 if doc_key in keys else None
    return rank is not None and rank <= 5, 1.0 / rank if rank else 0.0


def best_threshold(vault: Sequence[float], probes: Sequence[float]) -> float:
    """The cut-off that maximises balanced accuracy (share of vault questions answered + share of probes
    abstained on). Candidates are midpoints between neighbouring observed similarities, so the threshold
    sits between the two groups rather than on a question; of equally good ones, the middle one."""
    values = sorted(set(vault) | set(probes))
    candidates = [(a + b) / 2 for a, b in zip(values, values[1:])] or values or [0.0]
    scores = [sum(shares(vault, probes, t)) for t in candidates]
    tied = [t for t, score in zip(candidates, scores) if score == max(scores)]
    return tied[len(tied) // 2]


def shares(vault: Sequence[float], probes: Sequence[float], threshold: float) -> tuple[float, float]:
    """(share of vault questions with similarity >= `threshold`, share of probes below it), each 0-1."""
    answered = sum(s >= threshold for s in vault) / len(vault) if vault else 0.0
    abstained = sum(s < threshold for s in probes) / len(probes) if probes else 0.0
    return answered, abstained


def figures(results: Sequence[tuple[Question, str, str, bool, float]], modes: Sequence[str]) -> list[Figure]:
    """`results`: (question, its answer's source type, mode, hit@5, reciprocal rank)."""
    out = []
    for mode in modes:
        rows = [r for r in results if r[2] == mode]
        groups = ["all", *KINDS, *sorted({f"type:{r[1]}" for r in rows})]
        for group in groups:
            chosen = [r for r in rows if group == "all" or r[0].kind == group or f"type:{r[1]}" == group]
            if chosen:
                out.append(Figure(mode, group, len(chosen), sum(r[3] for r in chosen) / len(chosen),
                                  sum(r[4] for r in chosen) / len(chosen)))
    return out


def evaluate(manifest: Manifest, search: _SearchFn, encoder: Encoder, read: Callable[[str], str | None],
             modes: Sequence[str], limit: int, current: float) -> SelfEvalReport:
    """Derive the questions from the index (and, for links, the vault's markdown as `read` returns it),
    ask each in every mode, and ask the probes in dense mode for the threshold."""
    started = time.perf_counter()
    chunks = manifest.all_chunks()
    kinds = manifest.source_types()
    questions = _questions(manifest, chunks, read, limit)
    questions = [without_heading(q, chunks, encoder.embed) if q.kind == "heading" else q for q in questions]
    results = []
    vault_similarity = []
    for q in questions:
        for mode in modes:
            hits = search(q.text, mode, q.hold_out)
            results.append((q, kinds.get(q.doc_key, "note"), mode, *hit_and_rank(hits, q.doc_key)))
        vault_similarity.append(_top_similarity(search(q.text, "dense", q.hold_out)))
    probe_similarity = [_top_similarity(search(p, "dense", HoldOut())) for p in PROBES]
    threshold = best_threshold(vault_similarity, probe_similarity)
    at_threshold, at_current = shares(vault_similarity, probe_similarity, threshold), \
        shares(vault_similarity, probe_similarity, current)
    counts = {kind: sum(q.kind == kind for q in questions) for kind in KINDS}
    return SelfEvalReport(counts, figures(results, modes), len(PROBES), round(threshold, 3), *at_threshold,
                          current, *at_current, time.perf_counter() - started)


def _questions(manifest: Manifest, chunks: Sequence[Chunk], read: Callable[[str], str | None],
               limit: int) -> list[Question]:
    titles = manifest.titles()
    names: dict[str, str] = {}
    for key, title in titles.items():
        for name in {title.lower(), _stem(key).lower()}:
            names[name] = key if name not in names else ""  # a name two notes share points nowhere
    notes = {key: text for key in titles if key.endswith(".md") and (text := read(key)) is not None}
    links = link_questions(notes, {name: key for name, key in names.items() if key})
    return sample(alias_questions(chunks), limit) + sample(links, limit) + sample(heading_questions(chunks), limit)


def _top_similarity(hits: Sequence[Hit]) -> float:
    return max((h.similarity for h in hits if h.similarity is not None), default=0.0)

"""Turning results into text for people and JSON for programs. The JSON shapes are a public contract:
other tools parse them, so fields are only ever added, never renamed or removed."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from urllib.parse import quote
from collections.abc import Sequence
from typing import Any

from typing import TYPE_CHECKING

from pai_kb.models import Chunk, DocKey, Hit, SearchRequest, timestamp
from pai_kb.urls import url_at

if TYPE_CHECKING:  # types only: a search through a running server must not import the whole library
    from pai_kb.answer import Answer, Source
    from pai_kb.evaluation import ModeFigures
    from pai_kb.kb import Status
    from pai_kb.notes import NoteText
    from pai_kb.recordings import RecordingState
    from pai_kb.related import RelatedNote
    from pai_kb.self_eval import SelfEvalReport
    from pai_kb.sync import SyncReport

__all__ = ["JsonLogFormatter", "answer_dict", "answer_text", "dumps", "eval_dict", "eval_text", "hits_from_json",
           "hyperlink", "inert", "note_dict", "related_dict", "request_dict", "related_text", "report_dict", "report_text",
           "search_dict", "search_text", "self_eval_dict", "self_eval_text", "status_dict", "status_text"]

_SNIPPET = 240
# Control characters (C0 but newline and tab, DEL, C1): in a note title, a clip's URL or a model's
# output they could retitle the terminal or forge a hyperlink (ESC ] 8). The only escapes pai-kb
# prints are the hyperlinks it builds itself.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """Text safe to print on a terminal: every control character shown as U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


def obsidian_uri(vault: str | None, where: Chunk | DocKey) -> str | None:
    """`obsidian://open?vault=NAME&file=PATH`: opens the note in Obsidian. Only vault files have one."""
    if not vault or where.root != "vault":
        return None
    return f"obsidian://open?vault={quote(vault, safe='')}&file={quote(where.path, safe='')}"


def hyperlink(text: str, uri: str | None) -> str:
    """An OSC 8 terminal hyperlink; terminals without support show the text alone."""
    return f"\033]8;;{uri}\033\\{text}\033]8;;\033\\" if uri else text


def hit_dict(hit: Hit, vault: str | None = None) -> dict[str, Any]:
    """One search hit as its JSON object: rank, score (6 decimals), place (path, root, lines, seconds), text,
    chunk id, `obsidian_uri` (None outside the vault), the dense cosine `similarity` (None when the dense
    arm did not see it), `local_only` (see `privacy`) and `at_s` (a transcript passage's moment nearest
    the query, seconds; see `Hit.at_s`)."""
    c = hit.chunk
    return {
        "rank": hit.rank, "score": round(hit.score, 6), "path": c.path, "root": c.root, "title": c.title,
        "heading": c.heading, "line_start": c.line_start, "line_end": c.line_end,
        "source_type": c.source_type, "tags": list(c.tags), "text": c.text, "url": hit.url,
        "start_s": c.start_s, "end_s": c.end_s, "chunk_id": c.id, "obsidian_uri": obsidian_uri(vault, c),
        "similarity": None if hit.similarity is None else round(hit.similarity, 6), "local_only": c.local_only,
        "at_s": hit.at_s,
    }


def request_dict(request: SearchRequest, hits: Sequence[Hit], vault: str | None = None) -> dict[str, Any]:
    """What `search --json` prints for `request`: the request echoed, then the results."""
    return search_dict(request.query, hits, vault=vault, mode=request.mode, k=request.k, per_note=request.per_note,
                       filters=vars(request.filters))


def search_dict(query: str, hits: Sequence[Hit], vault: str | None = None, **echo: Any) -> dict[str, Any]:
    """The `search --json` payload: `query`, the `echo` fields as given, and `results` (one `hit_dict` each)."""
    return {"query": query, **echo, "results": [hit_dict(h, vault) for h in hits]}


def dumps(payload: Any) -> str:
    """The one JSON form every `--json` prints."""
    return json.dumps(payload, ensure_ascii=False)


def hits_from_json(payload: dict[str, Any]) -> list[Hit]:
    """Results as a server returned them, back into hits, so remote and local searches print alike."""
    hits = []
    for r in payload.get("results", []):
        chunk = Chunk(id=r["chunk_id"], doc_key=str(DocKey(r["root"], r["path"])), ordinal=0, title=r["title"],
                      heading=r["heading"], text=r["text"], embed_text="", line_start=r["line_start"],
                      line_end=r["line_end"], tags=tuple(r["tags"]), source_type=r["source_type"], url=r["url"],
                      start_s=r["start_s"], end_s=r["end_s"])
        hits.append(Hit(chunk=chunk, score=r["score"], rank=r["rank"], at_s=r.get("at_s")))
    return hits


def search_text(hits: Sequence[Hit], vault: str | None = None, links: bool = False) -> str:
    """Hits as numbered blocks (citation, score, heading, a snippet of at most 240 characters), control
    characters made inert; "No results." when there are none. `links`: citations as Obsidian hyperlinks."""
    if not hits:
        return "No results."
    blocks = []
    for hit in hits:
        c = hit.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= _SNIPPET else snippet[:_SNIPPET - 1] + "…"
        where = hyperlink(inert(citation(hit)), obsidian_uri(vault, c) if links else None)
        blocks.append(f"{hit.rank}. {where}  [{hit.score:.3f}]\n   {inert(c.heading)}\n   {inert(snippet)}")
    return "\n\n".join(blocks)


def citation(hit: Hit) -> str:
    """Where a hit is, as a person cites it: `path:START-END` (lines), `path p. N-M` for a PDF, then
    `@ HH:MM:SS` for a transcript (the moment nearest the query when known, else the passage's start)
    and the clip's URL when it has one."""
    c = hit.chunk
    if c.source_type == "pdf":
        pages = f"{c.line_start}-{c.line_end}" if c.line_end != c.line_start else f"{c.line_start}"
        return f"{c.path} p. {pages}"
    where = f"{c.path}:{c.line_start}-{c.line_end}" if c.line_end != c.line_start else f"{c.path}:{c.line_start}"
    if hit.cited_s is not None:
        where += f" @ {timestamp(hit.cited_s)}"
    return f"{where} {hit.url}" if hit.url else where


def report_text(report: SyncReport) -> str:
    """A sync report as one line of counts (files, chunks) and its duration in seconds."""
    return (f"{report.added} added, {report.updated} updated, {report.moved} moved, {report.removed} removed, "
            f"{report.unchanged} unchanged, {report.skipped} skipped files; {report.chunks_embedded} chunks "
            f"embedded, {report.chunks_reused} reused, {report.chunks_total} in index; {report.seconds:.2f} s")


def report_dict(report: SyncReport) -> dict[str, Any]:
    """A sync report's fields as a JSON object (counts, `seconds`)."""
    return dict(vars(report))


def status_dict(status: Status) -> dict[str, Any]:
    """The `status --json` payload: counts, index size in bytes, last sync as ISO 8601 (None before any), what
    is out of date by kind, skipped files with why, per exclude pattern the number of files it excludes, and
    `recordings`: `pending` (waiting for transcription) and `skipped`, each a list of {file (doc key),
    minutes (of audio, null where unknown), reason}."""
    pending = status.pending
    return {
        "index": str(status.index_dir), "files": status.files, "chunks": status.chunks, "model": status.model,
        "model_matches_settings": status.fingerprint_ok, "size_bytes": status.size_bytes,
        "last_sync": _iso(status.last_sync),
        "out_of_date": {"new": list(pending.new), "changed": list(pending.changed), "deleted": list(pending.deleted)},
        "skipped": status.errors,
        "exclude": [{"pattern": p, "files": n} for p, n in status.exclude.items()],
        "verified": status.verified,
        "changed_unseen_by_stat": list(status.unseen),
        "local_only": status.local_only,
        "recordings": {"pending": [_recording(r) for r in status.recordings_pending],
                       "skipped": [_recording(r) for r in status.recordings_skipped]},
    }


def _recording(state: RecordingState) -> dict[str, Any]:
    return {"file": state.key, "minutes": state.minutes, "reason": state.reason}


def status_text(status: Status) -> str:
    """`status_dict` as aligned lines for a terminal (at most 20 keys listed per kind), control characters
    made inert."""
    d = status_dict(status)
    stale = d["out_of_date"]
    lines = [
        f"index:      {d['index']}",
        f"files:      {d['files']}   chunks: {d['chunks']}   size: {d['size_bytes'] / 1e6:.1f} MB"
        f"   local-only: {d['local_only']}",
        f"model:      {d['model'] or '(none yet)'}" + ("" if d["model_matches_settings"] else
                                                     "  (settings name another model or chunker: "
                                                     "`pai-kb index` builds that generation beside this one)"),
        f"last sync:  {d['last_sync'] or 'never'}",
        f"out of date: {len(stale['new'])} new, {len(stale['changed'])} changed, {len(stale['deleted'])} deleted",
    ]
    for kind in ("new", "changed", "deleted"):
        lines.extend(f"  {kind}: {key}" for key in stale[kind][:20])
    if d["changed_unseen_by_stat"]:
        lines.append(f"  {len(d['changed_unseen_by_stat'])} changed with size and times as recorded: "
                     "the next `pai-kb index` reads them")
    if not d["verified"]:
        lines.append("  (checked by size and times; `pai-kb status --verify` reads every file)")
    recordings = d["recordings"]
    shown = {r["file"] for r in recordings["skipped"]}  # listed below, with the recordings
    others = [(key, why) for key, why in d["skipped"].items() if key not in shown]
    lines.extend(f"  skipped: {key}: {why}" for key, why in others[:20])
    if recordings["pending"] or recordings["skipped"]:
        waiting = recordings["pending"]
        known = [r["minutes"] for r in waiting if r["minutes"] is not None]
        length = f"{sum(known):.1f} min of audio" + (f", {len(waiting) - len(known)} of unknown length"
                                                    if len(known) < len(waiting) else "")
        lines.append(f"recordings: {len(waiting)} waiting for transcription" + (f" ({length})" if waiting else "")
                     + f", {len(recordings['skipped'])} skipped")
        lines.extend(f"  waiting: {r['file']}" + (f" ({r['minutes']:.1f} min)" if r["minutes"] is not None else "")
                     + f": {r['reason']}" for r in waiting[:20])
        lines.extend(f"  skipped: {r['file']}: {r['reason']}" for r in recordings["skipped"][:20])
    if d["exclude"]:
        lines.append("exclude:    " + ", ".join(
            f"{e['pattern']} ({e['files']} file{'s' if e['files'] > 1 else ''})" if e["files"] else f"{e['pattern']} (excludes no file)"
            for e in d["exclude"]))
    return inert("\n".join(lines))


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else None


def related_dict(note: str, notes: Sequence[RelatedNote], vault: str | None = None) -> dict[str, Any]:
    """The `related --json` payload: `note` as asked and `results`, each with rank, score (6 decimals), path,
    root, title, `linked` and `obsidian_uri`."""
    results = [{"rank": i, "score": round(n.score, 6), "path": n.path, "root": n.key.root, "title": n.title,
                "linked": n.linked, "obsidian_uri": obsidian_uri(vault, n.key)} for i, n in enumerate(notes, start=1)]
    return {"note": note, "results": results}


def related_text(notes: Sequence[RelatedNote]) -> str:
    """Related notes as numbered lines (path, score, whether already linked); "No related notes." when none."""
    if not notes:
        return "No related notes."
    return "\n".join(f"{i}. {inert(n.path)}  [{n.score:.3f}]{'  (already linked)' if n.linked else ''}"
                     for i, n in enumerate(notes, start=1))


def eval_dict(figures: Sequence[ModeFigures], judged: int) -> dict[str, Any]:
    """The `eval --json` payload: number of judged queries and one object of figures per mode."""
    return {"queries": judged, "modes": [vars(f) for f in figures]}


def eval_text(figures: Sequence[ModeFigures], judged: int) -> str:
    """The evaluation figures as a table: one row per mode (nDCG@10, R@10, R@100, MRR@10 as 0-1 fractions,
    p50 and p95 latency in milliseconds)."""
    lines = [f"{judged} judged queries",
             f"{'mode':<8} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>8} {'p95 ms':>8}"]
    lines += [f"{f.mode:<8} {f.ndcg10:8.4f} {f.recall10:7.4f} {f.recall100:7.4f} {f.mrr10:7.4f} "
              f"{f.p50_ms:8.1f} {f.p95_ms:8.1f}" for f in figures]
    return "\n".join(lines)


def self_eval_dict(report: SelfEvalReport) -> dict[str, Any]:
    """The self-evaluation payload: question counts by kind, probe count, figures per mode and question
    group, the abstention figures (fractions 0-1) at the suggested and current thresholds, seconds taken."""
    return {"questions": report.questions, "probes": report.probes,
            "figures": [vars(f) for f in report.figures],
            "abstention": {"suggested_min_similarity": report.threshold,
                           "answered_at_suggested": report.answered_at_threshold,
                           "abstained_at_suggested": report.abstained_at_threshold,
                           "current_min_similarity": report.current,
                           "answered_at_current": report.answered_at_current,
                           "abstained_at_current": report.abstained_at_current},
            "seconds": round(report.seconds, 1)}


def self_eval_text(report: SelfEvalReport) -> str:
    """The self-evaluation as a table of hit@5 and MRR@10 per mode and question group, then one line on
    abstention at the current and the suggested `answer.min_similarity`."""
    asked = ", ".join(f"{n} {kind}" for kind, n in report.questions.items())
    lines = [f"questions from this vault: {asked}; {report.probes} off-topic probes ({report.seconds:.0f} s)",
             f"{'mode':<8} {'questions':<16} {'n':>5} {'hit@5':>7} {'MRR@10':>7}"]
    lines += [f"{f.mode:<8} {f.group:<16} {f.questions:>5} {f.hit5:7.3f} {f.mrr10:7.3f}" for f in report.figures]
    lines.append(f"abstention: at answer.min_similarity = {report.current:.2f} (now) "
                 f"{report.answered_at_current:.0%} of vault questions answered, "
                 f"{report.abstained_at_current:.0%} of probes abstained on; at {report.threshold:.2f} "
                 f"(best for this vault) {report.answered_at_threshold:.0%} and {report.abstained_at_threshold:.0%}")
    return inert("\n".join(lines))


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """`record` as one JSON object: local ISO 8601 time, lower-case level, message."""
        return json.dumps({"time": dt.datetime.fromtimestamp(record.created).astimezone().isoformat(),
                           "level": record.levelname.lower(), "message": record.getMessage()}, ensure_ascii=False)


def source_citation(source: Source) -> str:
    """An answer source's citation (see `citation`), over the lines of all the chunks merged into it."""
    c = source.first
    hit = Hit(chunk=c, score=0.0, rank=source.n, at_s=source.at_s)
    if source.line_start == c.line_start and source.line_end == c.line_end:
        return citation(hit)
    from dataclasses import replace

    return citation(replace(hit, chunk=replace(c, line_start=source.line_start, line_end=source.line_end)))


def answer_dict(answer: Answer, vault: str | None = None) -> dict[str, Any]:
    """The `ask --json` payload: question, answer text, the citations shown (place, chunk ids, Obsidian URI),
    model, abstained/extractive/grounded flags, invalid citation numbers removed, the best cosine
    similarity (4 decimals, None when no dense hit) and the number of local-only passages withheld."""
    return {
        "question": answer.question, "answer": answer.text, "grounded": answer.grounded,
        "citations": [{"n": s.n, "path": s.first.path, "root": s.first.root, "heading": s.first.heading,
                       "line_start": s.line_start, "line_end": s.line_end, "url": url_at(s.first.url, s.at_s),
                       "start_s": s.first.start_s, "at_s": s.at_s, "chunk_id": s.first.id,
                       "chunk_ids": [c.id for c in s.chunks],
                       "obsidian_uri": obsidian_uri(vault, s.first)} for s in answer.shown],
        "model": answer.model, "abstained": answer.abstained, "extractive": answer.extractive,
        "invalid_citations": answer.invalid,
        "best_similarity": None if answer.best_similarity is None else round(answer.best_similarity, 4),
        "withheld": answer.withheld,
    }


def answer_text(answer: Answer, streamed: bool, vault: str | None = None, links: bool = False) -> str:
    """Everything after the streamed answer (or the whole of it when nothing was streamed)."""
    lines = [] if streamed else [inert(answer.text)]
    if streamed:
        lines.append("")
    if answer.invalid:
        lines.append(f"(removed citations to sources that were not given: {', '.join(f'[{n}]' for n in answer.invalid)})")
    if not answer.grounded and not answer.abstained:
        lines.append("(not grounded: the answer cites none of your notes; treat it with care)")
    if answer.shown:
        lines.append("\nSources:" if not answer.abstained else "\nClosest passages:")
        lines.extend(f"[{s.n}] {hyperlink(inert(source_citation(s)), obsidian_uri(vault, s.first) if links else None)}"
                     f"  ({inert(s.first.heading)})" for s in answer.shown)
    return "\n".join(lines)


def note_dict(note: NoteText) -> dict[str, Any]:
    """The `get --json` payload: root, path, the 1-based inclusive lines returned, file size in bytes,
    mtime (seconds since the epoch) and the text."""
    return {"root": note.root, "path": note.path, "line_start": note.line_start, "line_end": note.line_end,
            "size": note.size, "mtime": note.mtime, "text": note.text}

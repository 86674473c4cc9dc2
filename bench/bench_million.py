"""A million chunks (issue #24): search latency, dense recall, memory and disk for both vector backends,
embedded (vectors in the manifest, exact cosine over one in-memory matrix) and a real Chroma server
(`index.url`, started here with `chroma run`, answering the dense arm itself: `dense.ServerDense`).

    .venv/bin/python bench/bench_million.py [--chunks N] [--sizes 100000,300000]

Not in `make bench`: at the default N = 1,000,000 it ran for 45 minutes on this shared 2-core machine
(35 of them building: Chroma's upserts set the pace) and needs ~12 GB in /tmp while it runs.

How the collection is made (the loader and the model are not run a million times):
- text: notes of the obsidian-hub vault (../shared/data, read in place), loaded and chunked by pai-kb's
  own loader and chunker, whole notes in a fixed random order until `--distinct` chunks (4,000) are
  taken. Copy c of note `P` becomes the file `vault/copyNNNN/P`, titled `<title> (copyNNNN)`, each of its
  chunks ending with the marker word `copyNNNN`, so every chunk text is distinct (search drops passages
  that repeat one word for word) while the words keep the hub's real, Zipf-like frequencies; copies are
  taken until there are N chunks (250 copies at a million);
- vectors: the distinct texts' real all-MiniLM-L6-v2 vectors (through onnxruntime, `LocalModel`), from
  which each copy's vector is made (`--vectors`):
  `mixed` (the default): its text's real vector plus two other real vectors drawn at random, each
  weighted by U(0, 1), renormalised, plus Gaussian noise that alone would leave a cosine of 0.97,
  renormalised again (mean cosine to its text's real vector: 0.84);
  `perturbed`: its text's real vector plus Gaussian noise alone (cosine 0.90), renormalised.
  `perturbed` makes each text a tight cluster of hundreds of near-duplicates (copies ~0.81 apart, further
  from everything else), so every HNSW node's neighbours fall inside its own cluster and the graph breaks
  into islands: at 20,000 chunks, with Chroma's default HNSW settings (ef 100, 16 neighbours), recall@10
  was 0.83 with `perturbed` against 0.96 with `mixed` (ef_search 400: 0.94 against 0.997; ef 400 and 32
  neighbours: 0.997 and 1.000). That measures the generator more than the store, so the
  mixed cloud (no islands; each vector still mostly its own text's) is the default; it is still more
  clustered than a real corpus, so the recall figures are, if anything, conservative;
- queries: 100 real questions (the Obsidian Help and sources questions of tests/data, answerable and
  not, and the other benchmarks' queries) encoded by the same model; exact = numpy brute force over the
  very vectors written, kept as a running top-50 while they are generated.

Everything goes through the library's own write path (`Manifest.write_document` in transactions,
`generations.create`/`switch`, the meta keys `KnowledgeBase._sync_one` writes: fingerprint, model,
roots, last_sync), so `pai-kb serve` and the CLI open the index as any other. The index records a small
real vault folder made here (one note), which `--vault` names. The Chroma index's manifest is a copy of
the embedded one (same chunks and vectors; fingerprint `store=chroma-server`), and the same ids,
vectors and metadata are upserted into its generation's collection (`store.VectorStore`) while they
are written. One index grows through the `--sizes` checkpoints (100,000 and 300,000 chunks, then N);
at each, both backends are measured: hybrid p50/p95 in-process (`KnowledgeBase.search`) and through a
`pai-kb serve` subprocess (GET /search), dense recall@10 against exact, peak RSS (VmHWM) of `serve`
and of a cold `pai-kb search --local` (under /usr/bin/time), the cold CLI wall time (median of 5, keyword
mode as its baseline), and size on disk. Everything lives in one temporary folder under /tmp, removed at
the end.

The machine is shared: the load average is printed at the start and the end, and CPU seconds per search
(the serve process, plus the Chroma server's) stand beside the wall times, which other work inflates.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import hashlib
import json
import os
import queue
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import DATA, HEADER, PAI, ROOT, need_data, row  # noqa: E402
from pai_kb import generations  # noqa: E402
from pai_kb.chunking import chunk_document  # noqa: E402
from pai_kb.config import Config, load_config  # noqa: E402
from pai_kb.embeddings import LocalModel  # noqa: E402
from pai_kb.errors import SourceError  # noqa: E402
from pai_kb.kb import KnowledgeBase  # noqa: E402
from pai_kb.loaders import load_bytes  # noqa: E402
from pai_kb.manifest import DocInfo, FileState, Manifest  # noqa: E402
from pai_kb.models import Chunk, Filters  # noqa: E402
from pai_kb.changes import content_hash, embed_hash  # noqa: E402
from pai_kb.store import VectorStore, collection_name  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
HUB = DATA / "obsidian-hub"
DEPTH = 50  # what `Retriever.search` asks the dense arm for (search._CANDIDATES, k=10)
# Filtered hybrid searches: one that allows every chunk (all are notes) and one that allows one copy's
# notes (about 4,000 chunks), each timed over the first FILTERED_QUERIES queries.
FILTERS = {"broad": Filters(types=("note",)), "narrow": Filters(path="copy0001/**")}
FILTERED_QUERIES = 30
# The other benchmarks' queries (bench_noop, bench_scale), besides the questions in tests/data.
EXTRA_QUERIES = ["how do I sync my vault across devices", "dataview query examples", "kanban plugin for projects",
                 "zettelkasten note naming", "daily notes template with tasks", "how do I back up my notes",
                 "espresso grind size and dose", "home network vlan for iot devices", "planning fallacy outside view",
                 "sourdough starter feeding schedule"]
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def questions(limit: int) -> list[str]:
    found = []
    for name in ("obsidian_help_questions.jsonl", "obsidian_help_unanswerable.jsonl", "sources_questions.jsonl"):
        found += [json.loads(line)["q"] for line in (ROOT / "tests" / "data" / name).read_text().splitlines() if line]
    return list(dict.fromkeys(found + EXTRA_QUERIES))[:limit]


# -- the collection --------------------------------------------------------------------------------

@dataclasses.dataclass
class Note:
    path: str  # relative to the hub
    title: str
    links: tuple[str, ...]
    date: str
    size: int
    chunks: list[Chunk]
    first: int  # index of its first chunk among the distinct chunks (its rows in the anchor matrix)


def hub_notes(model: LocalModel, config: Config, distinct: int, seed: int) -> list[Note]:
    """Whole hub notes, loaded and chunked as a sync does, in a fixed random order, until `distinct` chunks."""
    files = sorted(p for p in HUB.rglob("*.md") if not any(part.startswith(".") for part in p.relative_to(HUB).parts))
    random.Random(seed).shuffle(files)
    notes: list[Note] = []
    total = 0
    for path in files:
        rel = path.relative_to(HUB).as_posix()
        data = path.read_bytes()
        try:
            doc = load_bytes(data, "vault", rel)
        except SourceError:
            continue
        chunks = chunk_document(doc, model.count_tokens, config.chunk_tokens, config.chunk_overlap, model.max_tokens)
        if not chunks:
            continue
        date = time.strftime("%Y-%m-%d", time.gmtime(path.stat().st_mtime))
        notes.append(Note(rel, doc.title, tuple(doc.links), date, len(data), chunks, total))
        total += len(chunks)
        if total >= distinct:
            break
    return notes


def anchor_vectors(model: LocalModel, notes: Sequence[Note], cache: Path | None) -> tuple[np.ndarray, float]:
    """The model's vectors of every distinct chunk (what the sync would embed), and the seconds it took
    (0 when read from `cache`, a .npy kept between runs while developing)."""
    texts = [c.embed_text for n in notes for c in n.chunks]
    digest = hashlib.sha1("\0".join(texts).encode()).hexdigest()[:12]
    cached = cache.with_name(f"{cache.stem}-{digest}.npy") if cache else None
    if cached is not None and cached.is_file():
        return np.load(cached), 0.0
    start = time.perf_counter()
    parts = []
    for lo in range(0, len(texts), 500):
        parts.append(np.asarray(model.embed(texts[lo:lo + 500]), dtype=np.float32))
        log(f"embedded {lo + len(parts[-1]):,} / {len(texts):,} distinct chunk texts")
    vectors = np.vstack(parts)
    seconds = time.perf_counter() - start
    if cached is not None:
        np.save(cached, vectors)
    return vectors, seconds


@dataclasses.dataclass
class Doc:
    key: str
    state: FileState
    info: DocInfo
    chunks: list[Chunk]
    hashes: list[str]
    rows: slice  # its chunks' rows in the copy's vector batch


def copy_docs(notes: Sequence[Note], copy: int, room: int) -> list[Doc]:
    """Copy `copy` of the notes as files, at most `room` chunks (the last file cut short)."""
    marker = f"copy{copy:04d}"
    docs = []
    for note in notes:
        if room <= 0:
            break
        key = f"vault/{marker}/{note.path}"
        title = f"{note.title} ({marker})"
        chunks = []
        for base in note.chunks[:room]:
            heading = title + base.heading[len(note.title):] if base.heading.startswith(note.title) else base.heading
            text = f"{base.text}\n\n{marker}"
            chunks.append(dataclasses.replace(
                base, id=hashlib.sha1(f"{key}\0{base.ordinal}\0{marker}".encode()).hexdigest()[:20], doc_key=key,
                title=title, heading=heading, text=text, embed_text=f"{heading}\n{text}"))
        room -= len(chunks)
        state = FileState(mtime_ns=1_700_000_000_000_000_000 + copy, size=note.size,
                          content_hash=content_hash(key.encode()))
        docs.append(Doc(key, state, DocInfo(title, "note", note.links, note.date), chunks,
                        [embed_hash(c.embed_text) for c in chunks], slice(note.first, note.first + len(chunks))))
    return docs


def perturbed(vectors: np.ndarray, rng: np.random.Generator, cosine: float) -> np.ndarray:
    """Each of `vectors` (unit length) plus Gaussian noise sized so that its expected cosine to the
    original is `cosine`, renormalised."""
    sigma = np.sqrt((1 / cosine**2 - 1) / vectors.shape[1])
    out = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(sigma)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def copy_vectors(anchors: np.ndarray, copy: int, seed: int, kind: str, cosine: float) -> np.ndarray:
    """Copy `copy`'s vectors, one per distinct chunk (see the module doc): `perturbed`, its text's vector
    plus noise (cosine `cosine` to it); `mixed`, its text's vector plus two other real vectors, each
    weighted by U(0, 1), renormalised, then perturbed (cosine `cosine`)."""
    rng = np.random.default_rng([seed, copy])
    if kind == "perturbed":
        return perturbed(anchors, rng, cosine)
    others = rng.integers(0, len(anchors), size=(len(anchors), 2))
    weights = rng.uniform(0, 1, size=(len(anchors), 2)).astype(np.float32)
    mixed = anchors + weights[:, :1] * anchors[others[:, 0]] + weights[:, 1:] * anchors[others[:, 1]]
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return perturbed(mixed, rng, cosine)


class Exact:
    """The exact top-`depth` of each query over every vector seen so far (numpy brute force, streamed)."""

    def __init__(self, queries: np.ndarray, depth: int = DEPTH) -> None:
        self.queries = queries
        self.depth = depth
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.empty((len(queries), 0), dtype=object)

    def add(self, vectors: np.ndarray, ids: Sequence[str]) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        names = np.concatenate([self.ids, np.broadcast_to(np.asarray(ids, dtype=object), (len(self.queries), len(ids)))],
                               axis=1)
        keep = min(self.depth, scores.shape[1])
        best = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.ids = np.take_along_axis(names, best, axis=1)

    def top(self, q: int, k: int = 10) -> list[str]:
        order = np.argsort(-self.scores[q], kind="stable")[:k]
        return [str(i) for i in self.ids[q][order]]


# -- an index --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Index:
    name: str  # "embedded" or "chroma"
    folder: Path
    config: Config
    env: dict[str, str]

    @property
    def generation(self) -> Path:
        return self.folder / "gen-1"

    @property
    def manifest_path(self) -> Path:
        return self.generation / "manifest.sqlite3"

    @property
    def cli(self) -> list[str]:
        return [*PAI, "--vault", str(self.config.vault), "--index", str(self.folder)]


def child_env(cache: Path, data: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_KB_")}
    env.update(HF_HUB_OFFLINE="1", PAI_KB_CACHE_DIR=str(cache), PAI_KB_DATA_DIR=str(data))
    if url:
        env["PAI_KB_CHROMA_URL"] = url
    return env


def make_index(name: str, folder: Path, vault: Path, cache: Path, data: Path, url: str | None) -> Index:
    env = child_env(cache, data, url)
    config = load_config({"vault": vault, "index_dir": folder}, env={k: v for k, v in env.items() if k.startswith("PAI_KB_")})
    return Index(name, folder, config, env)


def record_meta(index: Index, model: LocalModel) -> None:
    """What `KnowledgeBase._sync_one` and `Syncer.run` record: the folders, the fingerprint, the model, the
    time of the last sync; then the generation is made current."""
    generations.create(index.generation, index.config.chroma_url)
    kb = KnowledgeBase(index.config, embedder=model)
    manifest = Manifest(index.manifest_path)
    manifest.set_meta("roots", json.dumps({"vault": str(index.config.vault.resolve())}, sort_keys=True))
    manifest.set_meta("fingerprint", kb.fingerprint)
    manifest.set_meta("model", model.model_id)
    manifest.set_meta("last_sync", str(time.time()))
    manifest.close()
    generations.switch(index.folder, index.generation)


def write_copy(manifest: Manifest, docs: Sequence[Doc], vectors: np.ndarray) -> None:
    """One transaction per copy, each file through `Manifest.write_document`."""
    with manifest.transaction() as db:
        for doc in docs:
            manifest.write_document(db, doc.key, doc.state, doc.info, doc.chunks, doc.hashes,
                                    vectors[doc.rows].tolist())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
            time.sleep(0.2)


def start_chroma(path: Path, log_file: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    with log_file.open("ab") as out:
        proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    wait_port(port, proc, "chroma run")
    return proc, f"http://127.0.0.1:{port}"


def status_kb(pid: int, field: str) -> int:
    """A `VmHWM:`-style field of /proc/PID/status, in kB (0 when absent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, what: str, busy: float = 0.05, window: float = 3.0, limit: float = 1800) -> float:
    """Wait until process `pid` uses under `busy` of a core over `window` seconds (a server still
    indexing in the background would take the CPU from the measurements); returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < busy:
            return time.monotonic() - start
    log(f"{what} still busy after {limit:.0f} s; measuring anyway")
    return time.monotonic() - start


# Starts the command in a small process of its own: a child forked from this (large) process would count
# this process's pages in its peak RSS (Linux keeps the high-water mark across exec).
_LAUNCH = "import os, sys; os.execvpe(sys.argv[1], sys.argv[1:], os.environ)"


def run_cli(args: Sequence[str], env: dict[str, str], scratch: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in kB) of one whole CLI process; fails loudly. The peak comes from
    `/usr/bin/time -v`'s own child, else from a small launcher's rusage (which adds ~10 MB at most)."""
    report = scratch / "time.txt"
    timer = Path("/usr/bin/time")
    wrapped = ([str(timer), "-f", "%M", "-o", str(report), *args] if timer.is_file()
               else [sys.executable, "-c", _LAUNCH, *args])
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args[-4:])} failed ({proc.returncode}): {err.decode()[-2000:]}")
    peak = int(report.read_text().split()[-1]) if timer.is_file() else usage.ru_maxrss
    return wall, peak


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def pct(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


# -- measuring -------------------------------------------------------------------------------------

def in_process(index: Index, model: LocalModel, queries: Sequence[str], qvecs: np.ndarray, exact: Exact) -> dict:
    kb = KnowledgeBase(index.config, embedder=model)
    out: dict = {}
    try:
        start = time.perf_counter()
        kb.search(queries[0])
        out["first_s"] = time.perf_counter() - start
        for mode in ("hybrid", "dense", "keyword"):
            times = []
            cpu = time.process_time()
            for query in queries:
                start = time.perf_counter()
                hits = kb.search(query, k=10, mode=mode)
                times.append((time.perf_counter() - start) * 1000)
                if not hits and mode != "keyword":
                    raise RuntimeError(f"{index.name}: no {mode} hits for {query!r}")
            out[mode] = times
            out[f"{mode}_cpu_ms"] = (time.process_time() - cpu) * 1000 / len(queries)
        for name, filters in FILTERS.items():  # hybrid with a filter: the allowed ids go to the dense arm
            times = []
            for query in queries[:FILTERED_QUERIES]:
                start = time.perf_counter()
                kb.search(query, k=10, mode="hybrid", filters=filters)
                times.append((time.perf_counter() - start) * 1000)
            out[f"filter_{name}"] = times
        dense = kb.dense
        for depth in (DEPTH, 10):
            found = [len({i for i, _ in dense.query(qvecs[q].tolist(), depth)[:10]} & set(exact.top(q))) / 10
                     for q in range(len(queries))]
            out[f"recall_{depth}"] = statistics.mean(found)
    finally:
        kb.close()
        del kb
        trim()
    return out


def served(index: Index, queries: Sequence[str], logs: Path, chroma_pid: int | None) -> dict:
    port = free_port()
    record = index.folder / "server.json"
    record.unlink(missing_ok=True)
    start = time.perf_counter()
    with (logs / f"serve-{index.name}.log").open("ab") as out:
        proc = subprocess.Popen([*index.cli, "serve", "--port", str(port)], env=index.env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900
        while not record.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pai-kb serve ({index.name}) did not start; see {logs}")
            time.sleep(0.1)
        ready = time.perf_counter() - start
        base = f"http://127.0.0.1:{port}/search?"
        for query in queries[:3]:
            urllib.request.urlopen(base + urllib.parse.urlencode({"q": query, "k": 10}), timeout=120).read()
        times = []
        cpu = cpu_seconds(proc.pid) + (cpu_seconds(chroma_pid) if chroma_pid else 0)
        for query in queries:
            start = time.perf_counter()
            body = urllib.request.urlopen(base + urllib.parse.urlencode({"q": query, "k": 10}), timeout=120).read()
            times.append((time.perf_counter() - start) * 1000)
            if not json.loads(body)["results"]:
                raise RuntimeError(f"serve ({index.name}): no results for {query!r}")
        cpu = cpu_seconds(proc.pid) + (cpu_seconds(chroma_pid) if chroma_pid else 0) - cpu
        return {"ready_s": ready, "hybrid": times, "cpu_ms": cpu * 1000 / len(queries), "hwm_kb": status_kb(proc.pid, "VmHWM"),
                "rss_kb": status_kb(proc.pid, "VmRSS")}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def cold(index: Index, queries: Sequence[str], runs: int, scratch: Path) -> dict:
    run_cli([*index.cli, "search", queries[0], "--local"], index.env, scratch)  # page cache, ONNX file warm
    hybrid = [run_cli([*index.cli, "search", queries[n % len(queries)], "--local"], index.env, scratch)
              for n in range(runs)]
    keyword = [run_cli([*index.cli, "search", queries[n % len(queries)], "--mode", "keyword", "--local"], index.env,
                       scratch) for n in range(runs)]
    return {"hybrid_s": statistics.median(w for w, _ in hybrid), "hybrid_kb": max(r for _, r in hybrid),
            "keyword_s": statistics.median(w for w, _ in keyword), "keyword_kb": max(r for _, r in keyword)}


def measure(index: Index, model: LocalModel, queries: Sequence[str], qvecs: np.ndarray, exact: Exact,
            runs: int, logs: Path, chroma_pid: int | None = None) -> dict:
    log(f"{index.name}: in-process searches")
    figures = {"inproc": in_process(index, model, queries, qvecs, exact)}
    log(f"{index.name}: pai-kb serve")
    figures["serve"] = served(index, queries, logs, chroma_pid)
    log(f"{index.name}: cold CLI searches")
    figures["cold"] = cold(index, queries, runs, logs)
    figures["disk"] = folder_bytes(index.folder)
    return figures


def p50(values: Sequence[float]) -> float:
    return statistics.median(values)


def rows_for(n: int, e: dict, c: dict | None, chroma_data: int | None, chroma_hwm: int | None) -> list[str]:
    ei, es, ec = e["inproc"], e["serve"], e["cold"]
    mb = 1 / 1024
    out = [
        row(f"embedded, {n:,} chunks: hybrid p50 in-process, ms", p50(ei["hybrid"]), "ms", None, "≤ 30 ms"),
        row("  hybrid p95 in-process, ms", pct(ei["hybrid"], 95), "ms"),
        row("  dense p50 / keyword p50 in-process, ms", p50(ei["dense"]), "ms", None, f"keyword {p50(ei['keyword']):.1f} ms"),
        row("  hybrid p50 through serve (GET /search), ms", p50(es["hybrid"]), "ms", p50(ei["hybrid"]), "≤ 30 ms"),
        row("  hybrid p95 through serve, ms", pct(es["hybrid"], 95), "ms", pct(ei["hybrid"], 95)),
        row("  CPU per search: serve / in-process hybrid, ms", es["cpu_ms"], "ms", ei["hybrid_cpu_ms"]),
        row("  serve peak RSS (VmHWM), MB", es["hwm_kb"] * mb, "MB", None, f"≤ 1,000 MB (RSS after: {es['rss_kb'] * mb:.0f})"),
        row("  serve start until announced, s", es["ready_s"], "s"),
        row("  first search in-process (loads the vectors), s", ei["first_s"], "s"),
        row("  cold CLI search, hybrid, whole process, s", ec["hybrid_s"], "s", ec["keyword_s"],
            "≤ 1.0 s at 100,000" if n <= 150_000 else ""),
        row("  cold CLI search peak RSS, MB", ec["hybrid_kb"] * mb, "MB", ec["keyword_kb"] * mb, "≤ 1,000 MB"),
        row("  hybrid p50, filter allowing every chunk (--type note), ms", p50(ei["filter_broad"]), "ms",
            p50(ei["hybrid"])),
        row("  hybrid p50, filter allowing ~4,000 chunks (--path copy0001/**), ms", p50(ei["filter_narrow"]), "ms",
            p50(ei["hybrid"])),
        row("  dense recall@10 vs exact (exact backend)", ei[f"recall_{DEPTH}"], "", None, "= 1.000"),
        row("  index on disk, MB", e["disk"] / 2**20, "MB"),
    ]
    if c is None:
        return out
    ci, cs, cc = c["inproc"], c["serve"], c["cold"]
    return out + [
        row(f"chroma server, {n:,} chunks: hybrid p50 through serve, ms", p50(cs["hybrid"]), "ms", p50(es["hybrid"]),
            "≤ 50 ms"),
        row("  hybrid p95 through serve, ms", pct(cs["hybrid"], 95), "ms", pct(es["hybrid"], 95), "≤ 150 ms"),
        row("  CPU per search: serve + chroma server, ms", cs["cpu_ms"], "ms", es["cpu_ms"]),
        row("  hybrid p50 in-process, ms", p50(ci["hybrid"]), "ms", p50(ei["hybrid"])),
        row("  hybrid p95 in-process, ms", pct(ci["hybrid"], 95), "ms", pct(ei["hybrid"], 95)),
        row("  dense p50 / keyword p50 in-process, ms", p50(ci["dense"]), "ms", p50(ei["dense"]),
            f"keyword {p50(ci['keyword']):.1f} ms"),
        row("  hybrid p50, filter allowing every chunk (--type note), ms", p50(ci["filter_broad"]), "ms",
            p50(ei["filter_broad"])),
        row("  hybrid p50, filter allowing ~4,000 chunks (--path copy0001/**), ms", p50(ci["filter_narrow"]), "ms",
            p50(ei["filter_narrow"])),
        row(f"  dense recall@10 vs exact (arm asked for {DEPTH}, as search does)", ci[f"recall_{DEPTH}"], "", None,
            "≥ 0.95"),
        row("  dense recall@10 vs exact (asked for 10)", ci["recall_10"], ""),
        row("  serve peak RSS (VmHWM), MB", cs["hwm_kb"] * mb, "MB", es["hwm_kb"] * mb, "≤ 500 MB"),
        row("  serve start until announced, s", cs["ready_s"], "s", es["ready_s"]),
        row("  cold CLI search, hybrid, whole process, s", cc["hybrid_s"], "s", ec["hybrid_s"]),
        row("  cold CLI search peak RSS, MB", cc["hybrid_kb"] * mb, "MB", ec["hybrid_kb"] * mb),
        row("  chroma server peak RSS (VmHWM), MB", (chroma_hwm or 0) * mb, "MB"),
        row("  index on disk (manifest), MB", c["disk"] / 2**20, "MB", e["disk"] / 2**20),
        row("  chroma server data folder, MB", (chroma_data or 0) / 2**20, "MB"),
    ]


# -- the run ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    chunks: int = 1_000_000
    sizes: tuple[int, ...] = (100_000, 300_000)
    distinct: int = 4_000
    vectors: str = "mixed"  # or "perturbed" (see copy_vectors)
    noise_cosine: float | None = None  # None: 0.97 mixed, 0.90 perturbed
    queries: int = 100
    runs: int = 5
    chroma: bool = True
    anchors_cache: Path | None = None
    seed: int = 24

    @property
    def cosine(self) -> float:
        return self.noise_cosine or (0.97 if self.vectors == "mixed" else 0.90)

    @property
    def checkpoints(self) -> list[int]:
        return sorted({s for s in self.sizes if s < self.chunks} | {self.chunks})


class Upserter(threading.Thread):
    """Upserts into the Chroma collection on a thread of its own, while the main thread writes the
    manifest (the server indexes on its own threads meanwhile)."""

    def __init__(self, store: VectorStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.work: queue.Queue = queue.Queue(maxsize=2)
        self.seconds = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.work.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    ids, vectors, metas = item
                    start = time.perf_counter()
                    for lo in range(0, len(ids), 5000):
                        self.store.upsert(ids[lo:lo + 5000], vectors[lo:lo + 5000].tolist(), metas[lo:lo + 5000])
                    self.seconds += time.perf_counter() - start
            except BaseException as exc:  # noqa: BLE001 — handed to the main thread
                self.error = exc
            finally:
                self.work.task_done()

    def put(self, ids: list[str], vectors: np.ndarray, metas: list[dict]) -> None:
        self.check()
        self.work.put((ids, vectors, metas))

    def drain(self) -> None:
        self.work.join()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"upsert into Chroma failed: {self.error}") from self.error


def main(settings: Settings = Settings()) -> list[str]:
    need_data()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pai-kb-million-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        need = settings.chunks * 9_000 * (2 if settings.chroma else 1)
        free = shutil.disk_usage(tmp).free
        if free < need:
            sys.exit(f"/tmp has {free / 2**30:.1f} GB free; {settings.chunks:,} chunks need about "
                     f"{need / 2**30:.1f} GB")
        procs: list[subprocess.Popen] = []
        try:
            return run(settings, tmp, procs, load)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def run(settings: Settings, tmp: Path, procs: list[subprocess.Popen], load: tuple[float, float, float]) -> list[str]:
    run_start = time.perf_counter()
    vault, cache, data, logs = tmp / "vault", tmp / "cache", tmp / "data", tmp / "logs"
    for folder in (vault, cache, data, logs):
        folder.mkdir()
    (vault / "About this vault.md").write_text("# About this vault\n\nThe vault the benchmark index records; "
                                               "its chunks are copies of obsidian-hub notes.\n")
    queries = questions(settings.queries)
    # float32 on purpose: the vectors are made from real ones, and the index records this model, so every
    # process, `serve` and the CLI included, encodes queries with it (the generation's own model); int8
    # changes what a vector is, not how many there are, which is what this benchmark is about.
    model = LocalModel(MODEL, cache / "onnx", precision="float32")
    model.embed(["warm up"])  # exports the model into this run's cache (the subprocesses read it there)
    log("model ready")
    embedded = make_index("embedded", tmp / "ix-embedded", vault, cache, data, None)
    server = on_chroma = upserter = None
    if settings.chroma:
        server, url = start_chroma(tmp / "chroma-data", logs / "chroma.log")
        procs.append(server)
        log(f"chroma run on {url}")
        on_chroma = make_index("chroma", tmp / "ix-chroma", vault, cache, data, url)
        generations.create(on_chroma.generation, url)
        upserter = Upserter(VectorStore(on_chroma.generation / "chroma", url, collection_name(on_chroma.generation)))
        upserter.start()

    notes = hub_notes(model, embedded.config, settings.distinct, settings.seed)
    per_copy = sum(len(n.chunks) for n in notes)
    log(f"{len(notes)} hub notes, {per_copy:,} distinct chunks")
    anchors, embed_s = anchor_vectors(model, notes, settings.anchors_cache)
    qvecs = np.asarray([model.embed([q])[0] for q in queries], dtype=np.float32)
    exact = Exact(qvecs)

    record_meta(embedded, model)
    manifest = Manifest(embedded.manifest_path)
    written = copy = 0
    write_s = build_s = measure_s = 0.0
    own: list[float] = []
    lines: list[str] = []
    per_size: list[tuple[int, dict, dict | None]] = []
    for target in settings.checkpoints:
        build_start = time.perf_counter()
        while written < target:
            docs = copy_docs(notes, copy, min(per_copy, target - written))
            rows = np.concatenate([np.arange(d.rows.start, d.rows.stop) for d in docs])
            vectors = copy_vectors(anchors, copy, settings.seed, settings.vectors, settings.cosine)
            own.append(float(np.mean(np.sum(vectors[rows] * anchors[rows], axis=1))))
            ids = [c.id for d in docs for c in d.chunks]
            if upserter is not None:
                upserter.put(ids, vectors[rows], [{"doc_key": c.doc_key, "source_type": c.source_type}
                                                  for d in docs for c in d.chunks])
            start = time.perf_counter()
            write_copy(manifest, docs, vectors)
            write_s += time.perf_counter() - start
            exact.add(vectors[rows], ids)
            written += len(ids)
            copy += 1
            if copy % 10 == 0 or written >= target:
                chroma_s = f", chroma upserts {upserter.seconds:.0f} s" if upserter else ""
                log(f"written {written:,} chunks ({copy} copies): manifest {write_s:.0f} s{chroma_s}")
        manifest.close()  # the last connection checkpoints the WAL into the database file
        if upserter is not None and server is not None:
            upserter.drain()
            log(f"chroma upserts done; waited {wait_idle(server.pid, 'chroma'):.0f} s for the server to go idle")
        build_s += time.perf_counter() - build_start
        start = time.perf_counter()
        log(f"measuring at {written:,} chunks")
        e = measure(embedded, model, queries, qvecs, exact, settings.runs, logs)
        c = chroma_data = chroma_hwm = None
        if on_chroma is not None and server is not None:
            shutil.copyfile(embedded.manifest_path, on_chroma.manifest_path)
            record_meta(on_chroma, model)  # the same chunks; fingerprint store=chroma-server
            c = measure(on_chroma, model, queries, qvecs, exact, settings.runs, logs, server.pid)
            chroma_data = folder_bytes(tmp / "chroma-data")
            chroma_hwm = status_kb(server.pid, "VmHWM")
        measure_s += time.perf_counter() - start
        per_size.append((written, e, c))
        figures = rows_for(written, e, c, chroma_data, chroma_hwm)
        lines += figures
        print(HEADER + "\n" + "\n".join(figures), file=sys.stderr, flush=True)
        manifest = Manifest(embedded.manifest_path)
    manifest.close()
    if upserter is not None:
        upserter.work.put(None)
    lines += summary(per_size) + [
        row(f"vectors ({settings.vectors}): mean cosine to the text's real vector", statistics.mean(own), "", None,
            f"noise alone leaves {settings.cosine:.2f}"),
        row(f"build: {len(anchors):,} distinct chunk texts embedded, s", embed_s, "s", None,
            "0: read from --anchors-cache"),
        row(f"build: {written:,} chunks written to the manifest, s", write_s, "s", None,
            f"{written / write_s:,.0f} chunks/s"),
        row("build: Chroma upserts (a thread beside the manifest), s", upserter.seconds if upserter else 0, "s", None,
            f"{written / upserter.seconds:,.0f} vectors/s" if upserter and upserter.seconds else ""),
        row("build: wall, copies made until both stores were done, s", build_s, "s"),
        row("whole run (model, build, measuring), s", time.perf_counter() - run_start, "s", None,
            f"measuring {measure_s:.0f} s"),
        f"load average 1/5/15 min at the start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, at the end "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores, shared)",
    ]
    return lines


def summary(per_size: Sequence[tuple[int, dict, dict | None]]) -> list[str]:
    """The sizes at which the embedded backend met both 30 ms hybrid p50 (in-process and through serve)
    and 1 GB serve RSS."""
    good = [n for n, e, _ in per_size
            if max(p50(e["inproc"]["hybrid"]), p50(e["serve"]["hybrid"])) <= 30 and e["serve"]["hwm_kb"] <= 1000 * 1024]
    failed = [n for n, _, _ in per_size if n not in good]
    met = ", ".join(f"{n:,}" for n in good) or "none"
    missed = ", ".join(f"{n:,}" for n in failed) or "none"
    return [f"embedded met hybrid p50 ≤ 30 ms and serve RSS ≤ 1 GB at: {met}; missed at: {missed}"]


def _count(text: str) -> int:
    return int(text.replace("_", "").replace(",", ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=_count, default=1_000_000, help="chunks in the collection (1,000,000)")
    parser.add_argument("--sizes", default="100000,300000",
                        help="smaller sizes measured on the way, comma-separated (100000,300000; '' for none)")
    parser.add_argument("--distinct", type=_count, default=4_000, help="distinct chunk texts embedded (4,000)")
    parser.add_argument("--vectors", choices=("mixed", "perturbed"), default="mixed",
                        help="how a copy's vector is made from the real ones (see the module doc)")
    parser.add_argument("--noise-cosine", type=float,
                        help="cosine the Gaussian noise leaves to the vector it perturbs (0.97 mixed, 0.90 perturbed)")
    parser.add_argument("--queries", type=int, default=100, help="queries (100)")
    parser.add_argument("--runs", type=int, default=5, help="cold CLI runs per figure (5)")
    parser.add_argument("--no-chroma", action="store_true", help="measure the embedded backend only")
    parser.add_argument("--anchors-cache", type=Path,
                        help="keep the distinct texts' vectors in a .npy beside this path between runs (development)")
    args = parser.parse_args()
    lines = main(Settings(args.chunks, tuple(_count(s) for s in args.sizes.split(",") if s.strip()), args.distinct,
                          args.vectors, args.noise_cosine, args.queries, args.runs, not args.no_chroma,
                          args.anchors_cache))
    print(HEADER)
    print("\n".join(lines))

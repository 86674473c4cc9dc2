"""kill -9 of a real `pai-kb index` process at 20 random moments over the real Obsidian Help vault: after
each, a re-run must leave exactly what a fresh full index holds — the same (path, chunk id, text) in the
manifest, the same ids in the vector store and the keyword index."""

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import DATA, HashEmbedder, make_kb, needs_shared
from helpers import snapshot
from pai_kb.chunking import chunk_document
from pai_kb.loaders import load_bytes
from pai_kb.sources import discover

WORKER = Path(__file__).parent / "crash_worker.py"
KILLS = 20
pytestmark = needs_shared()


def expected(vault: Path, embedder: HashEmbedder) -> set[tuple[str, str, str]]:
    """A fresh full index, computed directly: what every file chunks into."""
    out = set()
    for key, source in discover({"vault": vault}).items():
        try:
            doc = load_bytes(source.abspath.read_bytes(), "vault", source.path)
        except Exception:
            continue
        out.update((key, c.id, c.text) for c in chunk_document(doc, embedder.count_tokens, 200, 32, embedder.max_tokens))
    return out


def mutate(vault: Path, rng: random.Random, round_no: int, parked: Path) -> None:
    """Retitle notes (every chunk changes), delete a few, bring earlier ones back, rename one."""
    notes = sorted(vault.rglob("*.md"))
    for note in rng.sample(notes, 25):
        text = note.read_text()
        body = text.split("\n---\n", 1)[1] if text.startswith("---\n") and "\n---\n" in text else text
        note.write_text(f"---\ntitle: Round {round_no} {note.stem}\n---\n{body}")
    for note in rng.sample(notes, 3):
        if note.exists():
            shutil.move(str(note), str(parked / f"{round_no}-{note.name}"))
    for back in sorted(parked.iterdir())[:2]:
        back.rename(vault / back.name)
    survivor = rng.choice(sorted(vault.rglob("*.md")))
    survivor.rename(survivor.with_name(f"r{round_no}-{survivor.name}"))


def test_kill_9_at_20_random_moments(tmp_path):
    vault = tmp_path / "vault"
    shutil.copytree(DATA / "obsidian-help" / "en", vault)
    parked = tmp_path / "parked"
    parked.mkdir()
    rng = random.Random(20261127)
    index_dir = tmp_path / "index"
    embedder = HashEmbedder()
    killed_mid_run = 0
    for round_no in range(KILLS):
        if round_no:
            mutate(vault, rng, round_no, parked)
        proc = subprocess.Popen([sys.executable, str(WORKER), str(vault), str(index_dir), "0.02"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 3.0))
        killed_mid_run += proc.poll() is None
        proc.kill()
        proc.wait()
        done = subprocess.run([sys.executable, str(WORKER), str(vault), str(index_dir), "0"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        kb = make_kb(tmp_path, vault, embedder)
        assert snapshot(kb) == expected(vault, embedder), f"round {round_no}"
        kb.close()
    print(f"\n[crash] {killed_mid_run}/{KILLS} kills landed mid-run; every re-run matched a fresh index")
    assert killed_mid_run >= KILLS * 0.75, "most runs finished before the kill; lengthen them"

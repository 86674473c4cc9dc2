"""kill -9 of a real `index` process at random moments: the next run must repair the index to exactly
what a fresh full index of the same files holds (manifest, keyword index and vectors)."""

import random
import subprocess
import sys
import time
from pathlib import Path

from conftest import HashEmbedder, make_kb
from helpers import snapshot

WORKER = Path(__file__).parent / "crash_worker.py"


def grow(vault: Path, rng: random.Random, round_no: int) -> None:
    """Add, edit, rename and delete notes so every kind of change is in flight when the kill lands."""
    notes = sorted(vault.rglob("*.md"))
    for i in range(40):
        (vault / f"gen/r{round_no}-{i}.md").parent.mkdir(exist_ok=True)
        body = "\n\n".join(f"## Part {j}\n\nRound {round_no} note {i} part {j} " + "lorem ipsum " * 30 for j in range(3))
        (vault / f"gen/r{round_no}-{i}.md").write_text(f"# Generated {i}\n\n{body}\n")
    for note in rng.sample(notes, 3):
        note.write_text(note.read_text() + f"\n\nEdited in round {round_no}.\n")
    victim, moved = rng.sample([n for n in sorted(vault.rglob("*.md")) if n.exists()], 2)
    victim.unlink()
    moved.rename(moved.with_name(f"moved-{round_no}-{moved.name}"))


def test_kill_9_at_random_moments_then_rerun(tmp_path, vault):
    rng = random.Random(20261127)
    index_dir = tmp_path / "index"
    kills = 0
    for round_no in range(5):
        grow(vault, rng, round_no)
        proc = subprocess.Popen([sys.executable, str(WORKER), str(vault), str(index_dir), "0.02"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        done = subprocess.run([sys.executable, str(WORKER), str(vault), str(index_dir), "0"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        kb = make_kb(tmp_path, vault, HashEmbedder())
        fresh = make_kb(tmp_path / f"fresh{round_no}", vault, HashEmbedder())
        fresh.index()
        assert snapshot(kb) == snapshot(fresh)
        kb.close()
    assert kills >= 3, "the runs finished before the kills; lengthen them"

"""One model export per user, not per index: a second vault adds no model files, and two first-time
indexes at once share one export without corrupting it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import PROJECT


def index(vault, index_dir, cache):
    return subprocess.Popen([sys.executable, "-m", "pai_kb", "--vault", str(vault), "--index", str(index_dir), "index"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PAI_KB_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"})


def test_two_vaults_indexed_at_once_share_one_export(tmp_path):
    cache = tmp_path / "cache"
    for name in ("one", "two"):
        shutil.copytree(PROJECT / "vault", tmp_path / name)
        (tmp_path / name / "pai-kb.toml").unlink()
    runs = [index(tmp_path / name, tmp_path / f"ix-{name}", cache) for name in ("one", "two")]
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err
    models = sorted(p.name for p in (cache / "onnx").glob("*.onnx"))
    assert len(models) in (1, 2) and len({name.split(".")[0] for name in models}) == 1  # one model, maybe optimised
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written left
    for name in ("one", "two"):
        index_files = [p for p in (tmp_path / f"ix-{name}").rglob("*") if p.is_file()]
        assert not [p for p in index_files if p.suffix == ".onnx"]  # an index folder holds only the index
        assert sum(p.stat().st_size for p in index_files) < 20 * 1024 * 1024
    before = {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").glob("*.onnx")}
    shutil.copytree(PROJECT / "vault", tmp_path / "three")
    (tmp_path / "three" / "pai-kb.toml").unlink()
    third = index(tmp_path / "three", tmp_path / "ix-three", cache)
    assert third.communicate(timeout=900)[0] and third.returncode == 0
    after = {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").glob("*.onnx")}
    assert after == before or set(after) - set(before) == {n.replace(".onnx", ".optimized.onnx") for n in before
                                                           if ".optimized" not in n}  # a third vault exports nothing

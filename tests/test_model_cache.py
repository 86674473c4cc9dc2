"""One model export per user, not per index: a second vault adds no model files, and two first-time
indexes at once share one export without corrupting it; the same for the export's int8 copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT
from pai_kb import embeddings
from pai_kb.embeddings import LocalModel
from pai_kb.errors import ConfigError
from pai_kb.onnx_encoder import int8_path, optimized_path, quantize_int8
from test_precision import tiny_onnx


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
    # one model: its export, maybe optimised, and its int8 copy (the default precision), maybe optimised
    assert 1 <= len(models) <= 4 and len({name.split(".")[0] for name in models}) == 1
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
    assert all(after.get(name) == made for name, made in before.items())  # a third vault exports nothing
    assert all(".optimized." in name for name in set(after) - set(before))  # at most a session's optimised copy


def test_the_int8_copy_is_made_once_per_user_and_atomically(tmp_path, real_embedder, monkeypatch):
    """Two first-time int8 runs at once each quantise into a private file and rename it into place: one
    copy, identical vectors from both, nothing half-written left (nor the temporary file a killed run
    left before); later runs reuse the copy and quantise nothing."""
    real_embedder.embed(["make the float export"])
    cache = tmp_path / "cache" / "onnx"
    cache.mkdir(parents=True)
    export = cache / real_embedder.onnx_path.name
    shutil.copy(real_embedder.onnx_path, export)
    target = int8_path(export)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    abandoned = target.with_name(f"{target.stem}.{gone.pid}.tmp")  # what a killed quantiser leaves
    abandoned.write_bytes(b"half a model")
    code = ("import json, sys; from pathlib import Path; from pai_kb.embeddings import LocalModel; "
            "m = LocalModel('all-MiniLM-L6-v2', Path(sys.argv[1]), precision='int8'); "
            "print(json.dumps(m.embed(['How do I add an alias to a note?', 'Pi-hole blocks ads'])))")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=PROJECT) for _ in range(2)]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    assert target.is_file() and not abandoned.exists() and not list(cache.glob("*.tmp"))
    assert {p.name for p in cache.glob("*.onnx")} <= {export.name, target.name, optimized_path(target).name}
    made = target.stat().st_mtime_ns

    def no_second_copy(source, target):
        raise AssertionError("the int8 copy was made again")

    monkeypatch.setattr(embeddings, "_quantize_in_child", no_second_copy)
    again = LocalModel("all-MiniLM-L6-v2", cache, precision="int8")
    assert np.allclose(again.embed(["How do I add an alias to a note?", "Pi-hole blocks ads"]), outputs[0], atol=1e-6)
    assert target.stat().st_mtime_ns == made


def test_a_failed_quantisation_leaves_no_file_and_says_what_to_set(tmp_path, real_embedder):
    """A quantiser that fails (here: an export that is not a model) leaves neither the copy nor its
    temporary file, and int8 is refused with the setting that avoids it, never run as float vectors."""
    cache = tmp_path / "onnx"
    cache.mkdir()
    broken = cache / real_embedder.onnx_path.name
    broken.write_bytes(b"not an ONNX model")
    model = LocalModel("all-MiniLM-L6-v2", cache, precision="int8")
    with pytest.raises(ConfigError, match='embedding.precision = "float32"'):
        model.embed(["anything"])
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == [broken.name]


def test_quantize_int8_writes_nothing_at_the_target_until_it_is_complete(tmp_path, monkeypatch):
    import onnxruntime.quantization

    def dies_half_way(model_input, model_output, **options):
        Path(model_output).write_bytes(b"half a model")
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", dies_half_way)
    source = tiny_onnx(tmp_path / "encoder-x.onnx")
    target = int8_path(source)
    optimized_path(target).write_bytes(b"a fused copy of an earlier int8 file")
    with pytest.raises(RuntimeError, match="no space"):
        quantize_int8(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, optimized_path(target).name])

"""The ONNX query encoder: the same vectors as the model, and a cold search that never imports torch."""

import json
import subprocess
import sys

import numpy as np

from conftest import PROJECT, make_kb
from pai_kb.embeddings import export_onnx
from pai_kb.kb import KnowledgeBase
from pai_kb.query_encoder import QueryEncoder

QUERIES = ["how long should a pour-over take?", "VLAN for IoT devices", "Überraschung 🧠", "a " * 400]


def test_export_matches_sentence_transformers(tmp_path, real_embedder):
    target = tmp_path / "q.onnx"
    diff = export_onnx(real_embedder, target)
    assert diff is not None and diff < 1e-5 and target.is_file()
    got = np.array(QueryEncoder(target, real_embedder.path / "tokenizer.json", 256).embed(QUERIES))
    want = np.array(real_embedder.embed(QUERIES))
    assert np.abs(got - want).max() < 1e-5  # the 400-word query is truncated exactly as the model does


def test_index_exports_once_and_cold_search_skips_torch(tmp_path, vault, real_embedder):
    kb = make_kb(tmp_path, vault, real_embedder)
    kb.index()
    exported = list((tmp_path / "index" / "onnx").glob("*.onnx"))
    assert len(exported) == 1
    assert isinstance(kb.query_embedder, QueryEncoder)
    script = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from pai_kb.cli import main\n"
        f"args = ['--vault', {str(vault)!r}, '--inbox', {str(tmp_path / 'inbox')!r}, '--index', {str(tmp_path / 'index')!r}]\n"
        "out = CliRunner().invoke(main, args + ['search', 'how long should a pour-over take?', '--json', '-k', '3'])\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'st': 'sentence_transformers' in sys.modules,\n"
        "                  'top': json.loads(out.stdout)['results'][0]['path']}))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"torch": False, "st": False, "top": "Coffee/Pour-over brewing.md"}
    model_hits = [h.chunk.id for h in make_kb(tmp_path, vault, real_embedder).search("VLAN for IoT devices", k=5)]
    onnx = KnowledgeBase(kb.config, embedder=real_embedder, query_encoder=real_embedder)
    assert [h.chunk.id for h in onnx.search("VLAN for IoT devices", k=5)] == model_hits

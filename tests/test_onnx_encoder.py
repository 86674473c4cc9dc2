"""The ONNX path: the same vectors as sentence-transformers, for queries and whole vaults, and a cold
search that never imports torch."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import PROJECT, make_kb, needs_shared
from pai_kb.embeddings import LocalModel, SentenceTransformerEmbedder, export_onnx
from pai_kb.kb import KnowledgeBase
from pai_kb.onnx_encoder import OnnxEncoder, drop_nan_guards, int8_path, optimized_path

QUERIES = ["how long should a pour-over take?", "VLAN for IoT devices", "Überraschung 🧠", "a " * 400]


def test_export_matches_sentence_transformers(tmp_path, reference_embedder):
    target = tmp_path / "q.onnx"
    diff = export_onnx(reference_embedder, target)
    assert diff is not None and diff < 1e-5 and target.is_file()
    got = np.array(OnnxEncoder(target, reference_embedder.path / "tokenizer.json", 256).embed(QUERIES))
    want = np.array(reference_embedder.embed(QUERIES))
    assert np.abs(got - want).max() < 1e-5  # the 400-word query is truncated exactly as the model does
    assert optimized_path(target).is_file()  # the first session kept its optimised graph; the next loads it
    again = np.array(OnnxEncoder(target, reference_embedder.path / "tokenizer.json", 256).embed(QUERIES))
    assert np.abs(again - want).max() < 1e-5


@needs_shared()
def test_batched_onnx_equals_sentence_transformers_on_a_real_vault(help_kb, float_embedder, reference_embedder):
    """Length-sorted batches of 16 pad differently from sentence-transformers' batches of 32: the vectors
    must not move, or an index built one way could not be searched the other."""
    texts = [f"{c.heading}\n{c.text}" for c in help_kb.manifest.all_chunks()][::8]
    assert len(texts) > 150 and len({len(t) for t in texts}) > 100
    got = np.array(float_embedder.embed(texts))
    assert np.abs(got - np.array(reference_embedder.embed(texts))).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_local_model_keeps_sentence_transformers_for_a_model_the_export_cannot_reproduce(tmp_path, reference_embedder):
    folder = tmp_path / "cls-model"
    for item in reference_embedder.path.iterdir():  # the same weights, pooled on [CLS] instead of the mean
        if item.name != "1_Pooling":
            (folder / item.name).parent.mkdir(parents=True, exist_ok=True)
            (folder / item.name).symlink_to(item)
    pooling = json.loads((reference_embedder.path / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    model = LocalModel(str(folder), tmp_path / "onnx")
    got = np.array(model.embed(QUERIES[:2]))
    assert not list((tmp_path / "onnx").glob("*.onnx"))
    assert np.abs(got - np.array(reference_embedder.embed(QUERIES[:2]))).max() > 1e-2  # really another pooling
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_index_exports_once_and_neither_index_nor_search_imports_torch(tmp_path, vault, real_embedder,
                                                                    float_embedder):
    """The export runs in a child process; the index run and a cold search never hold torch."""
    cache = tmp_path / "cache"  # a user cache of its own, so this test's index run makes the export
    kb = KnowledgeBase(make_kb(tmp_path, vault, real_embedder).config.replace(cache_dir=cache))
    script = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from pai_kb.cli import main\n"
        f"args = ['--vault', {str(vault)!r}, '--inbox', {str(tmp_path / 'inbox')!r}, '--index', {str(tmp_path / 'index')!r}]\n"
        "out = CliRunner().invoke(main, args + [sys.argv[1]] + sys.argv[2:])\n"
        "assert out.exit_code == 0, out.output\n"
        "top = json.loads(out.stdout)['results'][0]['path'] if sys.argv[1] == 'search' else None\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'st': 'sentence_transformers' in sys.modules, 'top': top}))")
    seen = []
    for command in (["index"], ["search", "how long should a pour-over take?", "--json", "-k", "3"]):
        result = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, cwd=PROJECT,
                                timeout=300, env={**os.environ, "PAI_KB_CACHE_DIR": str(cache)})
        assert result.returncode == 0, result.stderr
        seen.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert seen == [{"torch": False, "st": False, "top": None},
                    {"torch": False, "st": False, "top": "Coffee/Pour-over brewing.md"}]
    folder = cache / "onnx"  # once per user, never in the index folder
    exported = [p for p in folder.glob("*.onnx") if p.name.count(".") == 1]  # the float export, not its copies
    assert len(exported) == 1 and not list(folder.glob("*.tmp"))
    copies = {optimized_path(exported[0]), int8_path(exported[0]), optimized_path(int8_path(exported[0]))}
    assert set(folder.glob("*.onnx")) - {exported[0]} <= copies  # and its int8 copy, with `embedding.precision`
    ran = int8_path(exported[0]) if kb.manifest.get_meta("model").endswith("+int8") else exported[0]
    assert optimized_path(ran).is_file()  # the model the searches ran keeps its optimised graph
    assert not list((tmp_path / "index").rglob("*.onnx"))
    float_queries = KnowledgeBase(kb.config, query_encoder=float_embedder)  # whichever precision the index has
    onnx_hits = [h.chunk.id for h in float_queries.search("VLAN for IoT devices", k=5)]
    model = KnowledgeBase(kb.config, query_encoder=SentenceTransformerEmbedder("all-MiniLM-L6-v2"))
    assert [h.chunk.id for h in model.search("VLAN for IoT devices", k=5)] == onnx_hits


def test_dropping_the_attention_nan_guards_changes_no_vector(tmp_path, float_embedder):
    """The int8 copy is made without the `Where(IsNaN(softmax), 0, softmax)` guards torch exports (see
    `drop_nan_guards`): for every batch the encoder builds, padded ones and an empty text included, the
    vectors are exactly those of the graph with them."""
    import onnx

    float_embedder.embed(["make the export"])
    model = onnx.load(str(float_embedder.onnx_path))
    assert drop_nan_guards(model) == 6  # one per layer
    assert not [n for n in model.graph.node if n.op_type == "IsNaN"] and drop_nan_guards(model) == 0
    unguarded = tmp_path / "unguarded.onnx"
    onnx.save(model, str(unguarded))
    texts = ["", "x", *QUERIES, "Pi-hole blocks ads for the whole network. " * 30]
    tokenizer = float_embedder.path / "tokenizer.json"
    for batch in (1, 4, 16):  # each text alone, and padded beside much longer ones
        got = OnnxEncoder(unguarded, tokenizer, 256, batch_size=batch, keep_optimized=False).embed(texts)
        want = OnnxEncoder(float_embedder.onnx_path, tokenizer, 256, batch_size=batch, keep_optimized=False).embed(texts)
        assert np.array_equal(np.array(got), np.array(want))

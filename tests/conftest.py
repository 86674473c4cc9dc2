"""Shared fixtures. Tests never touch the project's own index/: every KnowledgeBase gets a temp dir."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pai_kb.config import load_config
from pai_kb.embeddings import LocalModel, SentenceTransformerEmbedder
from pai_kb.kb import KnowledgeBase

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def private_user_folders(tmp_path_factory):
    """No test reads or writes the real user's data or cache folder, or takes settings from the person
    running the tests: PAI_KB_* variables are cleared and the user folders point into the test's temp."""
    base = tmp_path_factory.mktemp("user")
    saved = {k: v for k, v in os.environ.items() if k.startswith("PAI_KB_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(PAI_KB_DATA_DIR=str(base / "data"), PAI_KB_CACHE_DIR=str(base / "cache"))
    yield base
    for key in [k for k in os.environ if k.startswith("PAI_KB_")]:
        del os.environ[key]
    os.environ.update(saved)


def needs_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent (only CI and dev machines have it)")


class HashEmbedder:
    """A deterministic bag-of-words embedder: fast, and similar texts get similar vectors. Counting uses
    the real model's tokenizer so chunk sizes are the production ones. Records every text embedded."""

    model_id = "test-hash-embedder"
    dim = 64

    def __init__(self) -> None:
        self._real = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        self.max_tokens = self._real.max_tokens
        self.embedded: list[str] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._real.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [self._vector(t) for t in texts]

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
            vec[h % self.dim] += 1.0 if h & 1 << 20 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """A writable copy of the project's sample vault."""
    target = tmp_path / "vault"
    shutil.copytree(PROJECT / "vault", target)
    return target


def make_kb(tmp_path: Path, vault: Path, embedder: object, **changes: object) -> KnowledgeBase:
    flags = {"vault": vault, "inbox": tmp_path / "inbox", "index_dir": tmp_path / "index"}
    user = {k: v for k, v in os.environ.items() if k in ("PAI_KB_DATA_DIR", "PAI_KB_CACHE_DIR")}
    config = load_config(flags, env=user, cwd=tmp_path).replace(**changes)
    return KnowledgeBase(config, embedder=embedder)  # type: ignore[arg-type]


def indexed_sample(tmp: Path, embedder: object) -> KnowledgeBase:
    """A writable copy of the sample vault and inbox under `tmp`, indexed with `embedder`."""
    shutil.copytree(PROJECT / "vault", tmp / "vault")
    shutil.copytree(PROJECT / "ingest", tmp / "inbox")
    kb = make_kb(tmp, tmp / "vault", embedder, inbox=tmp / "inbox")
    kb.index()
    return kb


@pytest.fixture(scope="session")
def float_embedder(tmp_path_factory) -> LocalModel:
    """The float32 export, made once for the session: what must reproduce sentence-transformers."""
    return LocalModel("all-MiniLM-L6-v2", tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="session")
def real_embedder(float_embedder) -> LocalModel:
    """The model as pai-kb runs it by default (`embedding.precision` int8), beside the session's export."""
    return LocalModel("all-MiniLM-L6-v2", float_embedder.onnx_path.parent, precision="int8")


@pytest.fixture(scope="session")
def reference_embedder() -> SentenceTransformerEmbedder:
    """sentence-transformers itself: what the ONNX path must reproduce."""
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def help_kb(tmp_path_factory, real_embedder) -> KnowledgeBase:
    """The real Obsidian Help vault (../shared), indexed once per session with the real model."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent (only CI and dev machines have it)")
    tmp = tmp_path_factory.mktemp("help")
    kb = make_kb(tmp, DATA / "obsidian-help" / "en", real_embedder)
    kb.index()
    return kb


SOURCE_FOLDERS = ("webclips-readability", "webclips-defuddle", "webclips-obsidian-clipper", "transcripts-vtt",
                  "transcripts-3b1b")


@pytest.fixture(scope="session")
def sources_kb(tmp_path_factory, real_embedder) -> KnowledgeBase:
    """Every web clip and transcript in ../shared/data, as an inbox, indexed once with the real model."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent (only CI and dev machines have it)")
    tmp = tmp_path_factory.mktemp("sources")
    (tmp / "vault").mkdir()
    others = tuple(f"{p.name}/*" for p in DATA.iterdir() if p.is_dir() and p.name not in SOURCE_FOLDERS)
    config = load_config({"vault": tmp / "vault", "inbox": DATA, "index_dir": tmp / "index"}, env={}, cwd=tmp)
    kb = KnowledgeBase(config.replace(exclude=others + ("*SOURCE.txt",)), embedder=real_embedder)
    kb.sources_report = kb.index()  # type: ignore[attr-defined]
    return kb


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> str:
    """A real Chroma server (`chroma run`, installed with chromadb) on a free loopback port, for the
    whole session; stopped at the end."""
    from helpers import free_port, start_chroma

    port = free_port()
    proc = start_chroma(tmp_path_factory.mktemp("chroma-server"), port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["embedded", "server"])
def mk(request) -> Callable[..., KnowledgeBase]:
    """make_kb for each vector store backend: the embedded store and a real Chroma server."""
    url = request.getfixturevalue("chroma_server") if request.param == "server" else None

    def factory(tmp_path: Path, vault: Path, embedder: object, **changes: object) -> KnowledgeBase:
        return make_kb(tmp_path, vault, embedder, chroma_url=url, **changes)

    return factory

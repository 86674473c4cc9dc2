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

BATCH_SIZE = 16  # measured best of 8/16/32/64 on 2 cores once texts are sorted by length


class OnnxEncoder:
    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int, threads: int | None = None,
                 batch_size: int = BATCH_SIZE) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        # Without the arena, memory freed after a long batch goes back to the OS instead of staying
        # reserved at the size of the largest batch ever seen.
        options.enable_cpu_mem_arena = False
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
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

"""Encoding queries with onnxruntime and tokenizers instead of torch.

Importing sentence-transformers costs about 6 s; onnxruntime and tokenizers about 0.2 s. A search only
has to encode one short query, so once `index` has exported the model to ONNX in the index folder
(`embeddings.export_onnx`, verified against sentence-transformers to 1e-5), searches use this.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class QueryEncoder:
    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return self._session.run(["embedding"], feeds)[0].tolist()

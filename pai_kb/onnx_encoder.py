"""Encoding with onnxruntime and tokenizers instead of torch, for queries and for indexing alike.

Importing sentence-transformers costs about 6 s, onnxruntime and tokenizers about 0.2 s, so a search
encodes its query here. Indexing does too: run through onnxruntime in batches of texts of similar
length (little padding), the exported model embeds the Obsidian Help chunks with vectors equal to
sentence-transformers' to 1e-6 (`bench/bench_index.py` times a whole index against its encode).
The export itself lives in `embeddings.export_onnx`, which verifies it against the model.

`embedding.precision = "int8"` runs an int8 copy of that export instead (`quantize_int8`): weights stored
as 8-bit integers, matrix products in integer kernels, less than half the float model's time, with
vectors within a cosine of 0.98 of the float ones (`bench/bench_precision.py` measures what that costs in
retrieval).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["OnnxEncoder", "drop_nan_guards", "int8_path", "optimized_path", "quantize_int8"]

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


def int8_path(onnx_path: Path, saturating: bool | None = None) -> Path:
    """Where the int8 copy of the float export `onnx_path` is kept: beside it, `NAME.int8.onnx`, or
    `NAME.int8r7.onnx` (7-bit weights, see `quantize_int8`) for a CPU whose integer kernels saturate
    (`saturating`; None: this one)."""
    saturating = saturating_cpu() if saturating is None else saturating
    return onnx_path.with_name(f"{onnx_path.stem}.{'int8r7' if saturating else 'int8'}.onnx")


def quantize_int8(source: Path, target: Path) -> None:
    """Write an int8 copy of the float export `source` at `target` (one of its `int8_path`s, which says
    whether the weights have 8 bits or 7), by onnxruntime's dynamic quantisation.

    The recipe, measured on the Obsidian Help chunks against the float export (`bench/bench_precision.py`
    has the retrieval figures):
    - Weights int8 (QInt8), activations uint8 quantised on the fly: U8S8, the format onnxruntime's x86
      integer kernels run fastest (its docs; S8S8 in this operator-oriented format is slow on x86).
    - Per output channel: per-tensor scales lose too much on this model (cosine to the float vectors over
      the 1,534 Help chunks: mean 0.955, worst 0.72), per-channel ones keep it at 0.994 (worst 0.984)
      at the same speed.
    - MatMul (every weight matrix: about half the float compute time) and Gather (the embedding tables:
      the file shrinks from 90 to 22 MB; no cost in speed, 0.0004 in mean cosine). No single MatMul
      dominates the error (each kept in float moves the mean cosine by at most 0.0015), so none is.
    - The plain export is quantised, not an optimised graph: onnxruntime's docs advise against optimising
      during quantisation, and neither its session optimiser nor its transformer optimiser fuses this
      export's attention (exported through torch's SDPA) into an Attention op that could become
      QAttention; the session fuses the quantised graph itself (DynamicQuantizeMatMul,
      MatMulIntegerToFloat), and `_session` keeps that fused copy as for the float model.
    - 8-bit weights where the CPU has VNNI (or is ARM), 7-bit (`reduce_range`) on other x86 CPUs, whose
      U8S8 kernel (VPMADDUBSW) can saturate with full-range weights, as onnxruntime's docs advise.
    - Without the attention's NaN guards (`drop_nan_guards`): once the products are integer, those
      elementwise passes over every attention matrix were 14% of the int8 model's time; dropping them
      leaves the vectors bit for bit the same.

    Written to a private name (`NAME.<pid>.tmp`) and renamed into place, so two processes making it at once
    never see half a file, and a process killed mid-way leaves only a temporary file the next one removes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp")
    try:
        model = onnx.load(str(source))
        drop_nan_guards(model)
        quantize_dynamic(model, tmp, op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                         reduce_range=target == int8_path(source, saturating=True), weight_type=QuantType.QInt8)
        optimized_path(target).unlink(missing_ok=True)  # a fused copy of an earlier int8 file must not outlive it
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def drop_nan_guards(model: Any) -> int:
    """Remove from an ONNX graph (in place) every `Where(IsNaN(p), 0, p)` after an attention softmax, and
    return how many there were. torch's scaled-dot-product attention exports this guard for rows whose
    keys are all masked, where the softmax is 0/0; `OnnxEncoder` never feeds such a row (each text keeps
    its [CLS] and [SEP] unmasked), so for every input it is given the guard is the identity."""
    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    guards, replaced = [], {}
    for node in graph.node:
        check = made_by.get(node.input[0]) if node.op_type == "Where" else None
        if check is not None and check.op_type == "IsNaN" and check.input[0] == node.input[2] \
                and made_by.get(node.input[2]) is not None and made_by[node.input[2]].op_type == "Softmax":
            guards += [node, check]
            replaced[node.output[0]] = node.input[2]
    for node in graph.node:
        for n, name in enumerate(node.input):
            if name in replaced:
                node.input[n] = replaced[name]
    for node in guards:
        graph.node.remove(node)
    return len(replaced)


@cache
def saturating_cpu() -> bool:
    """Whether onnxruntime's U8S8 kernels here may saturate on full 8-bit weights: an x86 CPU without VNNI
    (AVX512-VNNI or AVX-VNNI). ARM and other CPUs do not; an x86 CPU whose flags cannot be read (no
    /proc/cpuinfo) is taken to, since 7-bit weights are merely a little less exact."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    return not cpu_has_vnni()


def cpu_has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether the CPU flags (Linux's /proc/cpuinfo, or `cpuinfo` as its text) include a VNNI extension."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & {"avx512_vnni", "avx_vnni"})


def _session(onnx_path: Path, threads: int | None, keep_optimized: bool) -> Any:
    """A session on the graph-optimised copy of the model, written beside it the first time.

    Optimising the graph (fusing attention, GELU, layer norms) is half of the ~0.25 s a session takes to
    start, and a cold `search` pays it every time; loaded already optimised, that half is gone. The copy
    uses the "extended" level, which holds no machine-specific layouts, and is written to a private name
    and renamed, so two processes never see half a file. Where it cannot be written (a read-only index),
    the session optimises in memory as before."""
    import onnxruntime

    optimized = optimized_path(onnx_path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Without the arena, memory freed after a long batch goes back to the OS instead of staying
    # reserved at the size of the largest batch ever seen.
    options.enable_cpu_mem_arena = False
    # No busy-waiting between runs: onnxruntime's threads spin after each run by default, which on a
    # machine of few cores takes the CPU from the dense search right after a query is encoded. Measured
    # at 100,000 vectors, both settings interleaved in one run on a busy 2-core machine: encoding a query
    # 9.0 ms p50 against 12.3 ms spinning, the exact search after it 15.6 against 22.8 ms; 160 texts
    # embedded in 7.8 s against 8.5 s.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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

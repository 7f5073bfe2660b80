"""How much memory a checkpoint needs once served at 16, 8 or 4 bits, from config.json.

weights    every matrix at the precision's bits per weight (Q4_K_M keeps some at 5 and 6
           bits, as llama.cpp's quantizer does), vectors at 32 bits;
KV cache   keys and values in f16 for every layer, over the context of every slot;
compute    llama.cpp's working buffers for one 512-token batch (logits, FFN, attention);
overhead   the process and runtime around them (Python, the libraries, a GPU's context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from privserve.errors import ConversionError

GB = 1e9
BATCH_TOKENS = 512
RUNTIME_OVERHEAD_BYTES = 0.35 * GB

# Bits per weight of each llama.cpp type, block scales included.
F16, Q8_0, Q4_K, Q5_K, Q6_K = 16.0, 8.5, 4.5, 5.5, 6.5625


@dataclass(frozen=True)
class Matrix:
    role: str  # embed, output, attn_q, attn_k, attn_v, attn_qkv, attn_out, ffn_up, ffn_down
    rows: int
    cols: int
    layer: int | None = None

    @property
    def count(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model, read from its config.json."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    tied_embeddings: bool
    fused_qkv: bool  # ChatGLM's query_key_value
    gated_ffn_fused: bool  # ChatGLM's dense_h_to_4h holds gate and up together

    def matrices(self) -> list[Matrix]:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        found = [Matrix("embed", self.vocab, h)]
        if not self.tied_embeddings:
            found.append(Matrix("output", self.vocab, h))
        for layer in range(self.layers):
            if self.fused_qkv:
                found.append(Matrix("attn_qkv", q + 2 * kv, h, layer))
            else:
                found += [
                    Matrix("attn_q", q, h, layer),
                    Matrix("attn_k", kv, h, layer),
                    Matrix("attn_v", kv, h, layer),
                ]
            found.append(Matrix("attn_out", h, q, layer))
            found.append(Matrix("ffn_up", 2 * self.ffn, h, layer))  # gate and up
            found.append(Matrix("ffn_down", h, self.ffn, layer))
        return found

    def vector_count(self) -> int:
        """Norms and biases: small, kept in f32."""
        return self.layers * (2 * self.hidden + 3 * self.heads * self.head_dim) + self.hidden

    def parameter_count(self) -> int:
        return sum(m.count for m in self.matrices()) + self.vector_count()


def shape_of(config: dict[str, Any]) -> Shape:
    """Reads the shape from a config.json of the families privserve converts."""

    def first(*names: str, default: Any = None) -> Any:
        for name in names:
            if config.get(name) is not None:
                return config[name]
        if default is None:
            raise ConversionError(f"config.json lacks {' / '.join(names)}")
        return default

    if config.get("model_type") == "chatglm":
        heads = int(first("num_attention_heads"))
        groups = (
            int(first("multi_query_group_num")) if config.get("multi_query_attention") else heads
        )
        hidden = int(first("hidden_size"))
        return Shape(
            vocab=int(first("padded_vocab_size", "vocab_size")),
            hidden=hidden,
            layers=int(first("num_layers", "num_hidden_layers")),
            heads=heads,
            kv_heads=groups,
            head_dim=int(first("kv_channels", default=hidden // heads)),
            ffn=int(first("ffn_hidden_size")),
            tied_embeddings=False,
            fused_qkv=True,
            gated_ffn_fused=True,
        )
    hidden = int(first("hidden_size"))
    heads = int(first("num_attention_heads"))
    text = config.get("text_config") or {}
    return Shape(
        vocab=int(first("vocab_size")),
        hidden=hidden,
        layers=int(first("num_hidden_layers")),
        heads=heads,
        kv_heads=int(first("num_key_value_heads", default=heads)),
        head_dim=int(first("head_dim", default=hidden // heads)),
        ffn=int(first("intermediate_size")),
        tied_embeddings=bool(
            config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        ),
        fused_qkv=False,
        gated_ffn_fused=False,
    )


def _uses_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's Q4_K_M gives these layers' attn_v and ffn_down 6 bits: the first and last
    eighth, and every third layer between."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def bits_for(matrix: Matrix, label: str, layers: int) -> float:
    if label in ("f16", "bf16"):
        return F16
    if label == "q8_0":
        return Q8_0
    if matrix.role == "output":
        return Q6_K
    if matrix.role == "attn_qkv":
        return Q5_K
    if matrix.role in ("attn_v", "ffn_down") and matrix.layer is not None:
        return Q6_K if _uses_more_bits(matrix.layer, layers) else Q4_K
    return Q4_K


@dataclass(frozen=True)
class Estimate:
    label: str
    weights: float
    kv_cache: float
    compute: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.compute + self.overhead


def estimate(shape: Shape, label: str, context_tokens: int) -> Estimate:
    """Bytes to serve at `label` (f16, bf16, q8_0, q4_k_m) with `context_tokens` of KV cache
    (the context of one slot times the slots)."""
    weights = sum(m.count * bits_for(m, label, shape.layers) / 8 for m in shape.matrices())
    weights += shape.vector_count() * 4
    kv = 2 * shape.layers * context_tokens * shape.kv_heads * shape.head_dim * 2
    compute = 4 * BATCH_TOKENS * (shape.vocab + 2 * shape.ffn + 4 * shape.hidden)
    return Estimate(label, weights, kv, compute, RUNTIME_OVERHEAD_BYTES)


HEADROOM = 0.9  # leave a tenth of the free memory for everything else


@dataclass(frozen=True)
class Choice:
    bits: int
    reason: str


def choose_bits(
    shape: Shape, sixteen_label: str, context_tokens: int, free_bytes: int, where: str
) -> Choice:
    """The highest precision whose estimate fits in `free_bytes`, with the reason."""
    labels = {16: sixteen_label, 8: "q8_0", 4: "q4_k_m"}
    estimates = {bits: estimate(shape, label, context_tokens) for bits, label in labels.items()}
    budget = free_bytes * HEADROOM
    for bits in (16, 8, 4):
        if estimates[bits].total <= budget:
            fits = f"{estimates[bits].total / GB:.1f} GB"
            higher = [b for b in (16, 8) if b > bits]
            passed = "; ".join(
                f"{b}-bit would need {estimates[b].total / GB:.1f} GB" for b in higher
            )
            reason = (
                f"{bits}-bit needs about {fits} with a {context_tokens}-token KV cache, and "
                f"{where} has {free_bytes / GB:.1f} GB free" + (f" ({passed})" if passed else "")
            )
            return Choice(bits, reason)
    raise ConversionError(
        f"even 4-bit needs about {estimates[4].total / GB:.1f} GB with a "
        f"{context_tokens}-token KV cache, more than the {free_bytes / GB:.1f} GB free in "
        f"{where}; use a shorter context (--ctx-size) or fewer slots (--parallel)"
    )

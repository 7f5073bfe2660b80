"""A tiny random ChatGLM2 checkpoint, laid out as THUDM/chatglm2-6b is (config.json,
safetensors weights under ChatGLM2's tensor names, a SentencePiece tokenizer.model), and a
forward pass of it written here: transformers has no ChatGLM2 model without remote code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file

from tests.checkpoints.llama_family import sentencepiece_model

# ChatGLM2's tokens after the SentencePiece vocabulary, in order; ChatGLM3 adds its roles.
SPECIALS = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"]
ROLES = ["<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]
HIDDEN, HEADS, HEAD_DIM, GROUPS, FFN, LAYERS, PADDED_VOCAB = 256, 4, 64, 2, 512, 2, 640


def chatglm3(directory: Path, seed: int = 0) -> Path:
    """ChatGLM3 keeps ChatGLM2's layout; its name and role tokens tell them apart."""
    chatglm2(directory, seed, name="THUDM/chatglm3-6b")
    return directory


def chatglm2(directory: Path, seed: int = 0, name: str = "THUDM/chatglm2-6b") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.model").write_bytes(sentencepiece_model())
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "ChatGLMTokenizer",
                "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLMTokenizer", None]},
                "remove_space": False,
                "do_lower_case": False,
                "padding_side": "left",
            }
        )
    )
    config = {
        "_name_or_path": name,
        "architectures": ["ChatGLMModel"],
        "model_type": "chatglm",
        "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig"},
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "apply_residual_connection_post_layernorm": False,
        "ffn_hidden_size": FFN,
        "hidden_size": HIDDEN,
        "kv_channels": HEAD_DIM,
        "layernorm_epsilon": 1e-5,
        "multi_query_attention": True,
        "multi_query_group_num": GROUPS,
        "num_attention_heads": HEADS,
        "num_layers": LAYERS,
        "original_rope": True,
        "padded_vocab_size": PADDED_VOCAB,
        "post_layer_norm": True,
        "rmsnorm": True,
        "seq_length": 512,
        "torch_dtype": "float16",
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    generator = torch.Generator().manual_seed(seed)

    def random(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * scale).to(torch.float16)

    qkv = (HEADS + 2 * GROUPS) * HEAD_DIM
    weights = {
        "transformer.embedding.word_embeddings.weight": random(PADDED_VOCAB, HIDDEN, scale=1.0),
        "transformer.rotary_pos_emb.inv_freq": (
            1.0 / 10000 ** (torch.arange(0, HEAD_DIM // 2, 2).float() / (HEAD_DIM // 2))
        ).to(torch.float16),
        "transformer.encoder.final_layernorm.weight": 1 + random(HIDDEN),
        "transformer.output_layer.weight": random(PADDED_VOCAB, HIDDEN, scale=0.2),
    }
    for i in range(LAYERS):
        layer = f"transformer.encoder.layers.{i}."
        weights |= {
            layer + "input_layernorm.weight": 1 + random(HIDDEN),
            layer + "self_attention.query_key_value.weight": random(qkv, HIDDEN),
            layer + "self_attention.query_key_value.bias": random(qkv),
            layer + "self_attention.dense.weight": random(HIDDEN, HEADS * HEAD_DIM),
            layer + "post_attention_layernorm.weight": 1 + random(HIDDEN),
            layer + "mlp.dense_h_to_4h.weight": random(2 * FFN, HIDDEN),
            layer + "mlp.dense_4h_to_h.weight": random(HIDDEN, FFN),
        }
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def original_tokens(checkpoint: Path, text: str, chat: bool = False) -> list[int]:
    """ChatGLM's own tokenizer: SentencePiece for text, its tokens after the vocabulary;
    a rendered prompt names sop and eop as <sop> and <eop> (see privserve's template)."""
    processor = spm.SentencePieceProcessor(model_file=str(checkpoint / "tokenizer.model"))
    if not chat:
        return [*processor.encode(text)]
    names = SPECIALS + (ROLES if "chatglm3" in (checkpoint / "config.json").read_text() else [])
    ids = {name: processor.vocab_size() + i for i, name in enumerate(names)}
    ids |= {"<sop>": ids["sop"], "<eop>": ids["eop"]}
    tokens: list[int] = []
    pattern = "(" + "|".join(re.escape(n) for n in ids if n not in ("sop", "eop")) + ")"
    for piece in re.split(pattern, text):
        if piece in ids:
            tokens.append(ids[piece])
        elif piece:
            tokens += processor.encode(piece)
    return tokens


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """ChatGLM2's rotary embedding: the first half of each head, adjacent pairs rotated."""
    rot = x.shape[-1] // 2
    inv_freq = 1.0 / 10000 ** (torch.arange(0, rot, 2).float() / rot)
    angles = positions[:, None].float() * inv_freq[None, :]  # [seq, rot/2]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
    head, rest = x[..., :rot], x[..., rot:]
    pairs = head.reshape(*head.shape[:-1], rot // 2, 2)
    first, second = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([first * cos - second * sin, second * cos + first * sin], dim=-1)
    return torch.cat([rotated.flatten(-2), rest], dim=-1)


def torch_last_logits(checkpoint: Path, ids: list[int]) -> npt.NDArray[np.float32]:
    """ChatGLM2's forward pass in float32 over `ids`; the last position's logits."""
    w = {k: v.float() for k, v in load_file(checkpoint / "model.safetensors").items()}
    seq = len(ids)
    positions = torch.arange(seq)
    h = w["transformer.embedding.word_embeddings.weight"][torch.tensor(ids)]
    mask = torch.full((seq, seq), float("-inf")).triu(1)
    for i in range(LAYERS):
        p = f"transformer.encoder.layers.{i}."
        x = _rms_norm(h, w[p + "input_layernorm.weight"])
        qkv = x @ w[p + "self_attention.query_key_value.weight"].T
        qkv = qkv + w[p + "self_attention.query_key_value.bias"]
        q, k, v = qkv.split([HEADS * HEAD_DIM, GROUPS * HEAD_DIM, GROUPS * HEAD_DIM], dim=-1)
        q = _rotate(q.view(seq, HEADS, HEAD_DIM), positions)
        k = _rotate(k.view(seq, GROUPS, HEAD_DIM), positions)
        v = v.view(seq, GROUPS, HEAD_DIM)
        # Multi-query groups: each key/value group serves HEADS / GROUPS query heads.
        k = k.repeat_interleave(HEADS // GROUPS, dim=1)
        v = v.repeat_interleave(HEADS // GROUPS, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / HEAD_DIM**0.5 + mask
        attended = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(seq, -1)
        h = h + attended @ w[p + "self_attention.dense.weight"].T
        x = _rms_norm(h, w[p + "post_attention_layernorm.weight"])
        gate, up = (x @ w[p + "mlp.dense_h_to_4h.weight"].T).chunk(2, dim=-1)
        h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.dense_4h_to_h.weight"].T
    h = _rms_norm(h, w["transformer.encoder.final_layernorm.weight"])
    logits = h[-1] @ w["transformer.output_layer.weight"].T
    return logits.numpy()

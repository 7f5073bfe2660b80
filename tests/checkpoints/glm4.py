"""Tiny random GLM-4 checkpoints: GLM-4 (GlmForCausalLM, as THUDM's -hf repositories ship it)
and GLM-4-0414 / GLM-Z1 (Glm4ForCausalLM), each with a byte-level BPE tokenizer with GLM-4's
split pattern and tokens, and a chat template of the family's kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import GlmConfig, GlmForCausalLM, PreTrainedTokenizerFast

from tests.checkpoints.llama_family import (
    TINY_DECODER,
    byte_level_bpe,
    saved_byte_level_tokenizer,
)

# GLM-4 splits text with the same pattern as Llama 3.
PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
]
TEMPLATE = (
    "[gMASK]<sop>{% for message in messages %}"
    "{{ '<|' ~ message['role'] ~ '|>\\n' ~ message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def glm4(directory: Path, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = saved_byte_level_tokenizer(
        directory,
        PATTERN,
        SPECIALS,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=TEMPLATE,
    )
    torch.manual_seed(seed)
    GlmForCausalLM(GlmConfig(**_glm_shape(tokenizer))).to(torch.bfloat16).save_pretrained(directory)
    return directory


def _glm_shape(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What the tiny GLM-4 and GLM-4-0414 checkpoints share: sizes, ids, dtype."""
    ids = tokenizer.convert_tokens_to_ids
    return {
        "vocab_size": len(tokenizer),
        **TINY_DECODER,
        "eos_token_id": [ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
        "pad_token_id": ids("<|endoftext|>"),
        "torch_dtype": "bfloat16",
    }


Z1_TEMPLATE = (Path(__file__).parents[1] / "data" / "glm-z1-style.jinja").read_text()


def glm_z1(directory: Path, seed: int = 0) -> Path:
    """GLM-4-0414's layout (Glm4ForCausalLM: extra norms after attention and the MLP, rotary
    on half of each head) with GLM-Z1's thinking tags as plain tokens and a Z1-style
    template that opens the block in the generation prompt."""
    from transformers import Glm4Config, Glm4ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(PATTERN, SPECIALS),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=Z1_TEMPLATE,
        model_max_length=512,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = Glm4Config(**_glm_shape(tokenizer), partial_rotary_factor=0.5, attention_bias=True)
    Glm4ForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)
    return directory

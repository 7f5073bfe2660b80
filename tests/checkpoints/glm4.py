"""A tiny random GLM-4 checkpoint (GlmForCausalLM, as THUDM's -hf repositories ship it):
a byte-level BPE tokenizer with GLM-4's split pattern and tokens, and its chat template."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GlmConfig, GlmForCausalLM

from tests.checkpoints.llama_family import saved_byte_level_tokenizer

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
    ids = tokenizer.convert_tokens_to_ids
    config = GlmConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=512,
        eos_token_id=[ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
        pad_token_id=ids("<|endoftext|>"),
        torch_dtype="bfloat16",
    )
    GlmForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)
    return directory

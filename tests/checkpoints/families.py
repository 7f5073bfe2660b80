"""Every architecture `privserve convert` is tested on: how to build a tiny checkpoint, its
original tokenizer, a reference forward pass, and the prompt its own chat format gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from transformers import AutoTokenizer

from tests.checkpoints import chatglm, compare, glm4, llama_family

Messages = list[dict[str, str]]


def hf_chat_prompt(checkpoint: Path, messages: Messages) -> str:
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


def chatglm2_prompt(checkpoint: Path, messages: Messages) -> str:
    """ChatGLM2's build_prompt: history rounds, then the open question, after [gMASK]sop."""
    pairs = list(zip(messages[0::2], messages[1::2], strict=False))
    prompt = ""
    for i, (question, answer) in enumerate(pairs):
        prompt += f"[Round {i + 1}]\n\n问：{question['content']}\n\n答：{answer['content']}\n\n"
    prompt += f"[Round {len(pairs) + 1}]\n\n问：{messages[-1]['content']}\n\n答："
    return "[gMASK]<sop>" + prompt


def chatglm3_prompt(checkpoint: Path, messages: Messages) -> str:
    """ChatGLM3's build_chat_input: each message as <|role|>, a newline and its text."""
    turns = "".join(f"<|{m['role']}|>\n{m['content']}" for m in messages)
    return "[gMASK]<sop>" + turns + "<|assistant|>"


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Path], Path]
    # The tokenizer the family's real models were trained with, as its authors run it:
    # (checkpoint, text, whether it is a rendered chat prompt holding special tokens).
    original_tokens: Callable[[Path, str, bool], list[int]]
    # The chat prompt the family's own format makes of a conversation (user, assistant, user).
    chat_prompt: Callable[[Path, Messages], str] = hf_chat_prompt
    reference_logits: Callable[[Path, list[int]], npt.NDArray[np.float32]] = (
        compare.torch_last_logits
    )
    # A thinking model whose template opens <think> in the generation prompt.
    opens_thinking: bool = False


FAMILIES = [
    Family("llama", llama_family.llama, llama_family.sentencepiece_tokens),
    Family("mistral", llama_family.mistral, llama_family.sentencepiece_tokens),
    Family("qwen2", llama_family.qwen2, llama_family.tokenizer_json_tokens),
    Family("qwen3", llama_family.qwen3, llama_family.tokenizer_json_tokens),
    Family("qwen3-moe", llama_family.qwen3_moe, llama_family.tokenizer_json_tokens),
    Family("gemma", llama_family.gemma, llama_family.sentencepiece_tokens),
    Family(
        "chatglm2",
        chatglm.chatglm2,
        chatglm.original_tokens,
        chat_prompt=chatglm2_prompt,
        reference_logits=chatglm.torch_last_logits,
    ),
    Family(
        "chatglm3",
        chatglm.chatglm3,
        chatglm.original_tokens,
        chat_prompt=chatglm3_prompt,
        reference_logits=chatglm.torch_last_logits,
    ),
    Family("glm4", glm4.glm4, llama_family.tokenizer_json_tokens),
    Family("glm-z1", glm4.glm_z1, llama_family.tokenizer_json_tokens, opens_thinking=True),
    Family(
        "r1-distill-qwen",
        llama_family.r1_distill_qwen,
        llama_family.bos_tokenizer_json_tokens,
        opens_thinking=True,
    ),
]

"""Naming a BPE tokenizer's pre-tokenizer from its tokenizer.json, for the converter.

llama.cpp's converter recognises a pre-tokenizer by hashing how the tokenizer splits a test
text, so a fine-tuned model with an extended vocabulary, or any model it has not seen,
is refused even when its pre-tokenizer is a known one. privserve then reads the split
pattern itself and names the llama.cpp pre-tokenizer that implements exactly that pattern.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# llama.cpp pre-tokenizer name -> the split pattern its tokenizer.json carries.
KNOWN_PATTERNS = {
    "qwen2": (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    "llama-bpe": (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
}

# Architectures whose llama.cpp pre-tokenizer has a pattern above under a name of its own:
# GLM-4-0414 splits as Llama 3 does, and llama.cpp's "glm4" adds no BOS, as GLM writes
# [gMASK]<sop> in its template instead.
ARCHITECTURE_NAMES = {"Glm4ForCausalLM": {"llama-bpe": "glm4"}}


def split_patterns(pre_tokenizer: dict[str, Any] | None) -> list[str]:
    if not pre_tokenizer:
        return []
    if pre_tokenizer.get("type") == "Sequence":
        return [p for item in pre_tokenizer.get("pretokenizers", []) for p in split_patterns(item)]
    if pre_tokenizer.get("type") == "Split":
        pattern = pre_tokenizer.get("pattern", {})
        return [pattern["Regex"]] if "Regex" in pattern else []
    return []


def identify(model_dir: Path, architecture: str = "") -> str | None:
    """The llama.cpp pre-tokenizer for the tokenizer.json in `model_dir` of a model of
    `architecture` (config.json's), or None."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    pre_tokenizer = json.loads(path.read_text(encoding="utf-8")).get("pre_tokenizer")
    patterns = split_patterns(pre_tokenizer)
    if not patterns and pre_tokenizer and pre_tokenizer.get("type") == "ByteLevel":
        return "gpt-2" if pre_tokenizer.get("use_regex", True) else None
    for name, known in KNOWN_PATTERNS.items():
        if patterns == [known]:
            return ARCHITECTURE_NAMES.get(architecture, {}).get(name, name)
    return None

"""What a sentence-transformers directory says of itself, read from its small JSON files
without loading its weights: vector size, input limit, prompts, weight bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


@dataclass(frozen=True)
class DirectoryFacts:
    dimensions: int | None = None
    max_input_tokens: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    weight_bytes: int = 0


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_directory_facts(path: Path) -> DirectoryFacts:
    dimensions = None
    modules = _json(path / "modules.json")
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        config = _json(path / str(module.get("path", "")) / "config.json") or {}
        if kind.endswith("Pooling"):  # named one way before sentence-transformers 6
            size = config.get("word_embedding_dimension", config.get("embedding_dimension"))
            dimensions = size if size is not None else dimensions
        elif kind.endswith("Dense"):  # a projection after pooling sets the final size
            dimensions = config.get("out_features", dimensions)
    sentence_bert = _json(path / "sentence_bert_config.json") or {}
    own = _json(path / "config_sentence_transformers.json") or {}
    prompts = own.get("prompts") if isinstance(own.get("prompts"), dict) else {}
    weights = sum(
        f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES
    )
    max_tokens = sentence_bert.get("max_seq_length")
    if max_tokens is None:  # unset: what the tokenizer reads, as sentence-transformers takes
        tokenizer = _json(path / "tokenizer_config.json") or {}
        limit = tokenizer.get("model_max_length")
        positions = (_json(path / "config.json") or {}).get("max_position_embeddings")
        known = [n for n in (limit, positions) if isinstance(n, int) and n < 10**7]
        max_tokens = min(known) if known else None
    return DirectoryFacts(
        dimensions=int(dimensions) if isinstance(dimensions, int) else None,
        max_input_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
        prompts={str(k): str(v) for k, v in (prompts or {}).items()},
        weight_bytes=weights,
    )

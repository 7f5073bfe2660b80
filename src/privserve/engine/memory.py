"""How much memory is free, and how much a GGUF model will take once loaded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def free_ram_bytes() -> int:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def kv_cache_bytes(metadata: Mapping[str, str], context_tokens: int) -> int:
    """The f16 KV cache of `context_tokens` cells, from the GGUF's own shape; 0 when the
    metadata does not say."""
    arch = metadata.get("general.architecture", "")

    def number(key: str) -> int | None:
        value = metadata.get(f"{arch}.{key}")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    layers, width = number("block_count"), number("embedding_length")
    heads = number("attention.head_count")
    if not layers or not width or not heads:
        return 0
    kv_heads = number("attention.head_count_kv") or heads
    key = number("attention.key_length") or width // heads
    value = number("attention.value_length") or width // heads
    return layers * context_tokens * kv_heads * (key + value) * 2
